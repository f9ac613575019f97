// asyncio/composition.hpp - running awaitables together (Python: the rest of tasks.py):
// ensure_future, gather, wait_for, shield, wait, as_completed.
//
//   auto [a, b] = co_await asyncio::gather(fetch(1), fetch(2));      // concurrently, in order
//   int n = co_await asyncio::wait_for(fetch(3), 500ms);              // TimeoutError after 0.5 s
//   auto [done, pending] = co_await asyncio::wait(tasks, {.timeout = 1s});
//
// Every combinator accepts any awaitable, as Python's ensure_future() does: a Coro becomes a task
// (started at a later loop iteration), a Task or Future is used as it is, anything else is
// wrapped in a coroutine and scheduled as a task. The one exception is Python 3.12's too:
// wait_for() with a time-out > 0 runs a Coro (or any awaitable but a Task or Future) inside the
// awaiting task, under a timeout(). Waiting is done with intrusive waiter nodes (detail::Waiter)
// living in the awaiter objects, so shield, and wait_for on a task or future, allocate nothing
// (wait_for of a coroutine: the timer of its timeout()); gather keeps all its per-child
// bookkeeping in one block, wait in one array. The cancellation contract of each is written on
// it and drawn in docs/design/cancellation.md.
#pragma once

#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "asyncio/coroutines.hpp"
#include "asyncio/detail/awaitables.hpp"
#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/gather.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/detail/wait.hpp"
#include "asyncio/detail/wait_for.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/tasks.hpp"
#include "asyncio/timeouts.hpp"  // IWYU pragma: export (the Timeout wait_for() runs a coroutine under)

namespace asyncio {

/// Tag for gather(return_exceptions, ...): children's errors become Outcome values instead of
/// propagating. Python: gather(..., return_exceptions=True)
struct return_exceptions_t {
  explicit return_exceptions_t() = default;
};
inline constexpr return_exceptions_t return_exceptions{};

// ---- gather ------------------------------------------------------------------------------------
// The engine: detail/gather.hpp (GatherState, one block per gather).

/// The awaitable gather(aws...) returns: awaiting it yields a std::tuple of the results in
/// argument order (with Rex: a tuple of Outcome). Await it once. Movable until awaited.
/// Cancellation: as gather(); cancel() cancels the children without awaiting.
/// Python: the _GatheringFuture returned by asyncio.gather()
template <bool Rex, class... R>
class [[nodiscard]] Gathering : public detail::GatherHandle {
 public:
  using result_type = std::conditional_t<Rex, std::tuple<Outcome<detail::value_or_unit_t<R>>...>,
                                         std::tuple<detail::value_or_unit_t<R>...>>;
  using detail::GatherHandle::GatherHandle;

  result_type await_resume() {
    if constexpr (sizeof...(R) == 0) {
      return result_type{};
    } else {
      state()->check_result();
      return assemble(std::index_sequence_for<R...>{});
    }
  }

 private:
  template <std::size_t... I>
  result_type assemble(std::index_sequence<I...> /*unused*/) {
    detail::GatherState& st = *state();
    if constexpr (Rex) {
      return result_type{detail::outcome_of<R>(st.slot(I).child, st.slot(I).owned)...};
    } else {
      return result_type{detail::take_result<R>(st.slot(I).child, st.slot(I).owned)...};
    }
  }
};

/// The awaitable gather(std::vector<...>) returns: awaiting it yields a std::vector of the
/// results in order (with Rex: of Outcome). Await it once. Movable until awaited.
/// Cancellation: as gather().   Python: the _GatheringFuture returned by asyncio.gather()
template <bool Rex, class T>
class [[nodiscard]] GatheringVector : public detail::GatherHandle {
 public:
  using element_type =
      std::conditional_t<Rex, Outcome<detail::value_or_unit_t<T>>, detail::value_or_unit_t<T>>;
  using result_type = std::vector<element_type>;
  using detail::GatherHandle::GatherHandle;

  result_type await_resume() {
    result_type out;
    if (state() == nullptr) return out;
    detail::GatherState& st = *state();
    st.check_result();
    out.reserve(st.size());
    for (std::size_t i = 0; i < st.size(); ++i) {
      if constexpr (Rex) {
        out.push_back(detail::outcome_of<T>(st.slot(i).child, st.slot(i).owned));
      } else {
        out.push_back(detail::take_result<T>(st.slot(i).child, st.slot(i).owned));
      }
    }
    return out;
  }
};

/// Runs the awaitables concurrently and returns their results in argument order, as a tuple
/// (a void result is Unit). Coroutines become tasks now, in argument order; Tasks and Futures
/// are used as they are. The first child to fail (or to be cancelled) completes the gather with
/// its error; the other children keep running. No arguments: an empty tuple at once.
/// A Coro given twice, or already awaited: RuntimeError.
/// Cancellation: cancelling the awaiting task cancels every child that is still running; the
///   awaiter then gets CancelledError once a child has finished cancelling. A child cancelled on
///   its own completes the gather with CancelledError (the gather itself is not cancelled).
/// Throws: the first child error, CancelledError.   Python: asyncio.gather(*aws)
template <class... A>
requires(detail::Childlike<A> && ...)
Gathering<false, detail::result_of_t<A>...> gather(A&&... aws) {
  Gathering<false, detail::result_of_t<A>...> g;
  if constexpr (sizeof...(A) > 0) {
    detail::gather_children(false, g, std::forward<A>(aws)...);
  } else {
    (void)get_running_loop();  // RuntimeError outside a loop, as Python's gather() of nothing
  }
  return g;
}

/// As gather(aws...), but a child's error (or cancellation) becomes its Outcome instead of
/// propagating: the gather completes when every child has.
/// Cancellation: as gather(); once every child is done, a cancelled gather still throws
///   CancelledError (Python issue 32684).
/// Python: asyncio.gather(*aws, return_exceptions=True)
template <class... A>
requires(detail::Childlike<A> && ...)
Gathering<true, detail::result_of_t<A>...> gather(return_exceptions_t /*tag*/, A&&... aws) {
  Gathering<true, detail::result_of_t<A>...> g;
  if constexpr (sizeof...(A) > 0) {
    detail::gather_children(true, g, std::forward<A>(aws)...);
  } else {
    (void)get_running_loop();  // RuntimeError outside a loop, as Python's gather() of nothing
  }
  return g;
}

namespace detail {
template <bool Rex, class X>
GatheringVector<Rex, result_of_t<X>> gather_vector(std::vector<X> aws) {
  GatheringVector<Rex, result_of_t<X>> g;
  if (aws.empty()) {
    (void)get_running_loop();  // RuntimeError outside a loop, as Python's gather() of nothing
    return g;
  }
  g = GatheringVector<Rex, result_of_t<X>>(GatherState::create(aws.size(), Rex));
  for (std::size_t i = 0; i < aws.size(); ++i) g.state()->set_child(i, to_child(std::move(aws[i])));
  return g;
}
}  // namespace detail

/// gather() over a vector of Coro<T>, Task<T> or Future<T>: a std::vector<T> of the results in
/// order (Unit for void). An empty vector gives an empty result at once. Cancellation and
/// errors: as gather(aws...).   Python: asyncio.gather(*aws)
template <class X>
requires(detail::FutureHandle<X> || detail::CoroObject<X>)
GatheringVector<false, detail::result_of_t<X>> gather(std::vector<X> aws) {
  return detail::gather_vector<false>(std::move(aws));
}

/// gather(return_exceptions, vector): a std::vector<Outcome<T>>.
/// Python: asyncio.gather(*aws, return_exceptions=True)
template <class X>
requires(detail::FutureHandle<X> || detail::CoroObject<X>)
GatheringVector<true, detail::result_of_t<X>> gather(return_exceptions_t /*tag*/,
                                                     std::vector<X> aws) {
  return detail::gather_vector<true>(std::move(aws));
}

// ---- ensure_future -----------------------------------------------------------------------------

/// A future for any awaitable: a Future or Task is returned as it is; a Coro is scheduled as a
/// Task (consuming it); any other awaitable is wrapped in a coroutine and scheduled.
/// Python: asyncio.ensure_future(aw)
template <class A>
requires detail::Childlike<A>
auto ensure_future(A&& aw) {
  using P = detail::plain_t<A>;
  if constexpr (detail::FutureHandle<P>) {
    return P(aw);
  } else if constexpr (detail::CoroObject<P>) {
    // A Coro is consumed even from an lvalue.
    P coro = std::move(aw);  // NOLINT(bugprone-move-forwarding-reference)
    return create_task(std::move(coro));
  } else {
    return create_task(detail::wrap_awaitable<detail::result_of_t<A>>(P(std::forward<A>(aw))));
  }
}

// ---- wait_for ----------------------------------------------------------------------------------
// The engines: detail/wait_for.hpp (WaitForCore for a task or future, WaitForInline for a
// coroutine).

/// What wait_for() returns: awaiting it yields the inner awaitable's result. Movable until
/// awaited; await it once. Cancellation: see wait_for().   Python: the wait_for() coroutine
template <class A>
class [[nodiscard]] WaitFor {
 public:
  using result_type = detail::result_of_t<A>;

  WaitFor(A aw, double timeout) : aw_(std::move(aw)), timeout_(timeout) {}
  WaitFor(WaitFor&& o) noexcept(std::is_nothrow_move_constructible_v<A>)
      : aw_(std::move(o.aw_)), timeout_(o.timeout_) {}
  WaitFor& operator=(WaitFor&&) = delete;
  WaitFor(const WaitFor&) = delete;
  WaitFor& operator=(const WaitFor&) = delete;
  ~WaitFor() = default;

  bool await_ready() {
    if (engine_.index() != kIdle) throw RuntimeError("wait_for() awaitable awaited twice");
    if constexpr (!detail::FutureHandle<A>) {
      if (timeout_ > 0) {
        // Python 3.12: `async with timeout(t)`, the deadline taken as wait_for starts running.
        const double when = get_running_loop().time() + timeout_;
        engine_.template emplace<kInline>(detail::as_coro<result_type>(std::move(aw_)), when)
            .start();
        return false;  // the coroutine runs in await_suspend, as with `co_await coro`
      }
    }
    child_ = detail::to_child(std::move(aw_));
    // NOLINTNEXTLINE(readability-redundant-smartptr-get): the engine takes the raw state
    return engine_.template emplace<kCore>(child_.state.get(), timeout_).ready();
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if constexpr (!detail::FutureHandle<A>) {
      if (auto* in = std::get_if<kInline>(&engine_)) return in->suspend(h);
    }
    std::get_if<kCore>(&engine_)->suspend(h);
    return true;
  }
  result_type await_resume() {
    if constexpr (!detail::FutureHandle<A>) {
      if (auto* in = std::get_if<kInline>(&engine_)) return in->finish();
    }
    std::get_if<kCore>(&engine_)->finish();
    return result();
  }

 private:
  // Which engine runs the wait, chosen when it is awaited: none yet, the one that waits on a
  // task or future (WaitForCore), or the one that runs a coroutine inline (WaitForInline).
  static constexpr std::size_t kIdle = 0;
  static constexpr std::size_t kCore = 1;
  static constexpr std::size_t kInline = 2;
  using Inline = std::conditional_t<detail::FutureHandle<A>, std::monostate,
                                    detail::WaitForInline<result_type>>;

  result_type result() {
    if constexpr (!std::is_void_v<result_type>) {
      return detail::take_result<result_type>(child_.state.get(), child_.owned);
    }
  }

  A aw_;
  double timeout_;
  detail::Child child_;  // WaitForCore's inner future
  std::variant<std::monostate, detail::WaitForCore, Inline> engine_;
};

/// Waits for `aw` for at most `timeout` seconds and returns its result; on time-out, throws
/// TimeoutError once `aw` has finished. How it waits depends on what `aw` is:
///   * A Coro, or any awaitable that is not a Task or Future (a lock's acquire(), gather(),
///     shield(), another wait_for()), runs inside the awaiting task as `co_await aw` would: at
///     once, with the awaiter's current_task(), in its task tree; no task is made. It runs under
///     a timeout(): at the deadline the awaiting task is cancelled, `aw` sees CancelledError at
///     the co_await it is suspended in (its catch blocks and destructors run), and when that
///     CancelledError comes out, wait_for throws TimeoutError instead, as timeout() throws it.
///     If `aw` swallows the cancellation and returns a value, the value is returned. A result
///     that arrives in the deadline's loop iteration is lost to the cancellation, as in 3.12.
///     Python: `async with asyncio.timeout(t): return await aw`
///   * A Task or Future is not awaited inline: at the deadline it is cancelled, and wait_for
///     waits until it has finished; then TimeoutError, or the value if it swallowed the
///     cancellation and returned one. A result that arrives in the deadline's iteration wins:
///     the decision is taken two passes through the ready queue after the deadline, as
///     Python 3.11 does (see detail::WaitForCore).
///   * A time-out <= 0: a Task or Future already done gives its result at once. Anything else
///     is cancelled at once and waited for, then TimeoutError (or the value, if it swallowed
///     the cancellation). A Coro (or other awaitable) becomes a task that is cancelled before
///     its first step: its body never runs. Python 3.12: `fut = ensure_future(aw)`,
///     `await _cancel_and_wait(fut)`, `raise TimeoutError from exc`
/// The deadline is taken when the wait starts (the WaitFor is awaited), not when wait_for() is
/// called.
/// Cancellation: a coroutine sees the awaiter's cancellation itself, being part of that task,
///   and the awaiter gets whatever comes out of it (CancelledError normally; a cancellation
///   from outside stays CancelledError even at the deadline). A Task or Future is cancelled in
///   turn and waited for; the awaiter sees what it ended with, as when awaiting a task. A
///   cancellation that arrives after it finished is delivered as CancelledError (the result is
///   dropped, never the cancellation).
/// Throws: TimeoutError, CancelledError, or the error of `aw`.   Python: asyncio.wait_for(aw, t)
template <class A, class Rep, class Period>
requires detail::Childlike<A>
WaitFor<detail::plain_t<A>> wait_for(A&& aw, std::chrono::duration<Rep, Period> timeout) {
  return WaitFor<detail::plain_t<A>>(detail::stored(std::forward<A>(aw)),
                                     detail::to_seconds(timeout));
}
/// wait_for with the time-out in seconds. Python: asyncio.wait_for(aw, timeout)
template <class A, class S>
requires detail::Childlike<A> && std::is_arithmetic_v<S>
WaitFor<detail::plain_t<A>> wait_for(A&& aw, S seconds) {
  return WaitFor<detail::plain_t<A>>(detail::stored(std::forward<A>(aw)),
                                     detail::checked_delay(static_cast<double>(seconds)));
}

// ---- shield ------------------------------------------------------------------------------------
// The engine: detail/wait_for.hpp (ShieldCore).

/// What shield() returns: awaiting it yields the inner result. Movable until awaited.
/// Cancellation: see shield().   Python: the outer future asyncio.shield() returns
template <class R>
class [[nodiscard]] Shielded {
 public:
  explicit Shielded(detail::Child child) noexcept : child_(std::move(child)) {}
  Shielded(Shielded&& o) noexcept : child_(std::move(o.child_)) {}
  Shielded& operator=(Shielded&&) = delete;
  Shielded(const Shielded&) = delete;
  Shielded& operator=(const Shielded&) = delete;
  ~Shielded() = default;

  bool await_ready() {
    if (core_) throw RuntimeError("shield() awaitable awaited twice");
    core_.emplace(child_.state.get());
    return core_->ready();
  }
  // core_ is set by await_ready(), which the compiler calls first.
  void await_suspend(std::coroutine_handle<> h) {
    core_->suspend(h);  // NOLINT(bugprone-unchecked-optional-access)
  }
  R await_resume() {
    core_->finish();  // NOLINT(bugprone-unchecked-optional-access)
    if constexpr (!std::is_void_v<R>)
      return detail::take_result<R>(child_.state.get(), child_.owned);
  }

 private:
  detail::Child child_;
  std::optional<detail::ShieldCore> core_;
};

/// Awaits `aw` but protects it from cancellation: cancelling the awaiting task makes the await
/// throw CancelledError at once while `aw` (a task) keeps running. A Coro becomes a task now.
/// If `aw` itself is cancelled by other means, the await throws CancelledError too.
/// Cancellation: the awaiter is cancelled, `aw` is not. (Keep a handle to `aw` if you need its
///   result later; the loop keeps the task alive either way.)
/// Python: asyncio.shield(aw)
template <class A>
requires detail::Childlike<A>
Shielded<detail::result_of_t<A>> shield(A&& aw) {
  return Shielded<detail::result_of_t<A>>(detail::to_child(std::forward<A>(aw)));
}

// ---- wait --------------------------------------------------------------------------------------
// The engine: detail/wait.hpp (WaitCore). Also defined there, as wait() takes it:
//   enum class ReturnWhen { first_completed, first_exception, all_completed };
//   When wait() returns. Python: FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED

/// Options of wait(): both optional. Python: wait(fs, timeout=None, return_when=ALL_COMPLETED)
struct WaitOptions {
  /// Give up after this long (no TimeoutError: the rest is in `pending`); empty: no limit.
  std::optional<std::chrono::duration<double>> timeout = std::nullopt;
  ReturnWhen return_when = ReturnWhen::all_completed;
};

/// The result of wait(): the futures that are done and those that are not, each in the order
/// they were given. `auto [done, pending] = co_await wait(...)`.
template <class F>
struct WaitResult {
  std::vector<F> done;
  std::vector<F> pending;
};

namespace detail {

inline FutureStateBase* state_of(const TaskRef& t) {
  return t.get();
}
template <class T>
FutureStateBase* state_of(const Future<T>& f) {
  return f.state();
}

/// Checks wait()'s arguments (ValueError) and drops duplicates (Python makes a set).
template <class F>
std::vector<F> unique_futures(std::vector<F> fs, ReturnWhen when) {
  if (fs.empty()) throw ValueError("Set of Tasks/Futures is empty.");
  if (when != ReturnWhen::first_completed && when != ReturnWhen::first_exception &&
      when != ReturnWhen::all_completed) {
    throw ValueError("Invalid return_when value");
  }
  std::vector<F> out;
  out.reserve(fs.size());
  for (F& f : fs) {
    FutureStateBase* st = state_of(f);
    if (st == nullptr) throw InvalidStateError("wait(): empty handle");
    bool seen = false;
    for (const F& g : out) seen = seen || state_of(g) == st;
    if (!seen) out.push_back(std::move(f));
  }
  return out;
}

}  // namespace detail

/// What wait() returns: awaiting it yields a WaitResult. Movable until awaited.
/// Cancellation: see wait().   Python: the asyncio.wait() coroutine
template <class F>
class [[nodiscard]] Waiting {
 public:
  Waiting(std::vector<F> fs, WaitOptions options)
      : fs_(detail::unique_futures(std::move(fs), options.return_when)), options_(options) {}
  Waiting(Waiting&& o) noexcept : fs_(std::move(o.fs_)), options_(o.options_) {}
  Waiting& operator=(Waiting&&) = delete;
  Waiting(const Waiting&) = delete;
  Waiting& operator=(const Waiting&) = delete;
  ~Waiting() = default;

  bool await_ready() {
    std::vector<detail::FutureStateBase*> states;
    states.reserve(fs_.size());
    for (const F& f : fs_) states.push_back(detail::state_of(f));
    std::optional<double> timeout;
    if (options_.timeout) timeout = options_.timeout->count();
    core_.emplace(std::move(states), timeout, options_.return_when);
    return core_->ready();
  }
  // core_ is set by await_ready(), which the compiler calls first.
  void await_suspend(std::coroutine_handle<> h) {
    core_->suspend(h);  // NOLINT(bugprone-unchecked-optional-access)
  }
  WaitResult<F> await_resume() {
    core_->finish();  // NOLINT(bugprone-unchecked-optional-access)
    WaitResult<F> r;
    for (F& f : fs_) (detail::state_of(f)->done() ? r.done : r.pending).push_back(std::move(f));
    return r;
  }

 private:
  std::vector<F> fs_;
  WaitOptions options_;
  std::optional<detail::WaitCore> core_;
};

/// Waits until the futures/tasks meet `options.return_when` (default: all done) or the time-out
/// passes; returns {done, pending}. Never throws TimeoutError and never cancels the futures.
/// Duplicates count once. Coroutines are not accepted (schedule them with create_task first).
/// An empty vector: ValueError.
/// Cancellation: safe; the awaiter gets CancelledError, the futures are left untouched.
/// Python: asyncio.wait(fs, timeout=, return_when=)
template <class F>
requires(detail::FutureHandle<F> || std::same_as<F, TaskRef>)
Waiting<F> wait(std::vector<F> fs, WaitOptions options = {}) {
  return Waiting<F>(std::move(fs), options);
}

// ---- as_completed ------------------------------------------------------------------------------
// The engine: detail/wait.hpp (AsCompletedCore, wait_for_one).

/// The range as_completed() returns: exactly size() elements, each a Coro<T> that, awaited
/// (`co_await std::move(elem)`), yields the next result in completion order. Dereference each
/// position once. Cancellation: see as_completed().
/// Python: the iterator of _wait_for_one() coroutines from asyncio.as_completed()
template <class T>
class [[nodiscard]] AsCompleted {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Coro<T>;
    using reference = Coro<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    iterator() noexcept = default;
    iterator(detail::AsCompletedCore* core, std::size_t i) noexcept : core_(core), i_(i) {}
    Coro<T> operator*() const { return detail::wait_for_one<T>(detail::Ref(core_)); }
    iterator& operator++() noexcept {
      ++i_;
      return *this;
    }
    void operator++(int) noexcept { ++i_; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.i_ == b.i_; }

   private:
    detail::AsCompletedCore* core_ = nullptr;
    std::size_t i_ = 0;
  };

  explicit AsCompleted(detail::AsCompletedCore* core) noexcept : core_(core) {}
  [[nodiscard]] iterator begin() const noexcept { return iterator(core_.get(), 0); }
  [[nodiscard]] iterator end() const noexcept { return iterator(core_.get(), size()); }
  [[nodiscard]] std::size_t size() const noexcept { return core_->size(); }

 private:
  detail::Ref<detail::AsCompletedCore> core_;
};

/// Iterates over the results of `fs` in the order they complete: each element, awaited, yields
/// the next result (or rethrows that child's error). Coroutines become tasks now; duplicate
/// tasks count once. After `timeout`, every element not yet resolved throws TimeoutError (the
/// futures are not cancelled).
/// Cancellation: safe; a cancelled element takes nothing, so the next element gets the result.
/// Python: asyncio.as_completed(fs, timeout=)
template <class X>
requires(detail::FutureHandle<X> || detail::CoroObject<X>)
AsCompleted<detail::result_of_t<X>> as_completed(
    std::vector<X> fs, std::optional<std::chrono::duration<double>> timeout = std::nullopt) {
  std::vector<detail::Child> children;
  children.reserve(fs.size());
  for (X& f : fs) {
    detail::Child c = detail::to_child(std::move(f));
    bool seen = false;
    for (const detail::Child& d : children) seen = seen || d.state == c.state;
    if (!seen) children.push_back(std::move(c));
  }
  std::optional<double> t;
  if (timeout) t = timeout->count();
  return AsCompleted<detail::result_of_t<X>>(
      new detail::AsCompletedCore(detail::core_of(get_running_loop()), std::move(children), t));
}

}  // namespace asyncio
