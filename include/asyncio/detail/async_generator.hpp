// Internal: the engine under asyncio::AsyncGenerator<Y, S> (include/asyncio/generators.hpp).
//
// An async generator's body runs inside its consumer's task. `co_await gen.next()` resumes the
// generator's frame (detail::transfer_to, as a Coro is awaited); `co_yield` transfers back to
// the consumer; so does the end of the body. In between, whatever the body awaits (sleep, a
// future, a Coro) parks the consumer's task, and cancelling that task cancels that await:
//
//     consumer task:  [consumer frame] --next()--> [generator frame] --co_await--> sleep
//                                       <-co_yield-                   (task parked here)
//
// Nothing is copied between the frames: the consumer reads the yielded object through a
// pointer and next() moves it into the optional it returns. No loop trip, no allocation per
// element.
//
// Every step is one awaiter (detail::agen::StepAwaiter) that resumes the frame from a
// `co_yield` and is resumed when the body yields again, ends, or throws:
//     next()      the `co_yield` evaluates to S{} (Python's anext(), asend(None))
//     asend(v)    the `co_yield` evaluates to v, which lives in the awaiter during the step
//     athrow(e)   the `co_yield` throws e (`pending`)
//     aclose()    the `co_yield` throws GeneratorExit (`pending`), which unwinds the body
//                 (destructors and catch blocks run; the body may co_await on the way out,
//                 still in the closing task) and which aclose() swallows when it leaves the
//                 body. A body that yields again instead is left suspended and aclose() throws
//                 RuntimeError; its frame is destroyed with the AsyncGenerator.
//
// Finalisation (Python's sys.set_asyncgen_hooks): the first next() registers the promise with
// the running loop as a detail::AsyncGenFinalizer; EventLoop::shutdown_asyncgens() (run by
// asyncio::run and Runner::close) pops each one still registered and awaits its finalize(),
// which is aclose(). A generator unregisters itself when it finishes, is closed, or is destroyed.
#pragma once

#include <concepts>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "asyncio/detail/errors.hpp"
#include "asyncio/detail/loop_core.hpp"
#include "asyncio/detail/promise.hpp"

namespace asyncio {

template <class Y, class S>
class AsyncGenerator;

/// Thrown at the `co_yield` where an async generator is suspended when aclose() (or loop
/// finalisation) closes it. Let it propagate (catch(...) blocks and destructors see it; rethrow
/// it): aclose() swallows it when it leaves the body. Not a std::exception, so
/// `catch (const std::exception&)` does not catch it. Python: GeneratorExit
class GeneratorExit {
 public:
  [[nodiscard]] const char* what() const noexcept { return "GeneratorExit"; }
};

namespace detail::agen {

/// Where an async generator is in its life (Python: inspect.getasyncgenstate):
///     created -> running -> suspended -> running -> ... -> finished
///     created -> finished                  (aclose() or athrow() before the first next():
///                                           nothing runs)
///     suspended -> running -> finished     (aclose(): GeneratorExit unwinds the body)
///     suspended -> finished                (aclose() found GeneratorExit ignored)
/// `running` lasts while the body runs *or awaits* (its consumer's task is parked inside it):
/// a second next()/asend()/athrow() or an aclose() meanwhile is an error.
enum class State : unsigned char { created, suspended, running, finished };

template <class Y, class S>
struct Promise;
template <class Y, class S>
using Handle = std::coroutine_handle<Promise<Y, S>>;

struct Empty {};
/// Where a step keeps the value its `co_yield` receives (S{} for next(), v for asend(v)).
template <class S>
using SentSlot = std::conditional_t<std::is_void_v<S>, Empty, S>;
/// The promise's pointer to it (nothing when S is void).
template <class S>
using SentPtr = std::conditional_t<std::is_void_v<S>, Empty, S*>;

inline constexpr const char* kEmptyMessage =
    "AsyncGenerator is empty (moved from or default-constructed)";
// Python's messages for awaiting one step's awaitable a second time.
inline constexpr const char* kReuseNext = "cannot reuse already awaited __anext__()/asend()";
inline constexpr const char* kReuseClose = "cannot reuse already awaited aclose()/athrow()";

/// The awaiter of `co_yield`: hands control back to the consumer; on resumption, throws what
/// athrow() or aclose() left pending, or else evaluates to the value sent in.
template <class Y, class S>
struct YieldAwaiter {
  Promise<Y, S>* p;
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(Handle<Y, S> /*self*/) const noexcept {
    return p->suspend_to_consumer(State::suspended);
  }
  S await_resume() const {
    if (p->pending) [[unlikely]]
      raise(p->pending);
    if constexpr (!std::is_void_v<S>) return std::move(*p->sent);
  }

 private:
  [[noreturn, gnu::noinline, gnu::cold]] static void raise(std::exception_ptr& e) {
    std::rethrow_exception(std::exchange(e, nullptr));
  }
};

/// `co_yield lvalue`: the awaiter holds the copy that the consumer moves from.
template <class Y, class S>
struct CopyYieldAwaiter : YieldAwaiter<Y, S> {
  Y copy;
  std::coroutine_handle<> await_suspend(Handle<Y, S> self) noexcept {
    this->p->value = std::addressof(copy);
    return YieldAwaiter<Y, S>::await_suspend(self);
  }
};

template <class Y, class S>
struct Promise final : PromiseBase, AsyncGenFinalizer {
  ASYNCIO_DETAIL_PROMISE_CTOR(Promise)
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() = default;

  AsyncGenerator<Y, S> get_return_object() noexcept;
  void return_void() noexcept {}
  void unhandled_exception() noexcept { exception = std::current_exception(); }

  /// `co_yield rvalue`: the object lives in the co_yield expression, across the suspension.
  YieldAwaiter<Y, S> yield_value(Y&& v) noexcept {
    value = std::addressof(v);
    return {this};
  }
  /// `co_yield lvalue`: copied once, so the consumer never moves from the body's variable.
  CopyYieldAwaiter<Y, S> yield_value(const Y& v)
  requires std::copy_constructible<Y>
  {
    return {{this}, v};
  }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(Handle<Y, S> self) const noexcept {
      Promise& p = self.promise();
      unregister_asyncgen(&p);
      return p.suspend_to_consumer(State::finished);
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  /// Loop finalisation (shutdown_asyncgens): aclose().
  Coro<void> finalize() override;

  /// From the body's suspension points: back to whoever resumed it.
  std::coroutine_handle<> suspend_to_consumer(State s) noexcept {
    state = s;
    tls_leaf = parent();
    return transfer_to(continuation());
  }

  /// From a consumer's await_suspend: run the body until it yields or ends.
  template <class P>
  std::coroutine_handle<> resume_from(std::coroutine_handle<P> caller) noexcept {
    set_continuation(caller);
    mark_owned_elsewhere();  // the AsyncGenerator owns this frame, not the caller's awaiter
    state = State::running;
    tls_leaf = this;
    return transfer_to(Handle<Y, S>::from_promise(*this));
  }

  /// Marks the generator finished: no more of its body will run (one never started, one that
  /// ignored GeneratorExit, one whose step died with its task), and the loop no longer
  /// finalises it.
  void mark_finished() noexcept {
    state = State::finished;
    unregister_asyncgen(this);
  }

  std::exception_ptr exception;  ///< what escaped the body (raised once by the next await)
  /// athrow()'s exception, or aclose()'s GeneratorExit: the `co_yield` throws it on resumption.
  std::exception_ptr pending;
  Y* value = nullptr;  ///< the object of the last co_yield (valid while suspended there)
  /// The value the `co_yield` receives: in the awaiter of the step in flight.
  [[no_unique_address]] SentPtr<S> sent{};
  State state = State::created;
  /// The AsyncGenerator was destroyed while a task was inside the body (a step in flight): the
  /// frame lives on until that step ends, and the awaiter of that step destroys it (see
  /// release()).
  bool orphaned = false;
};

/// Destroys a generator's frame (destructors of everything alive in it run; nothing awaits).
template <class Y, class S>
void destroy(Handle<Y, S> h) noexcept {
  unregister_asyncgen(&h.promise());
  h.destroy();
}

/// The AsyncGenerator lets go of its frame. One that a task is running (parked at an await
/// inside the body, on behalf of a step: next(), asend(), athrow() or aclose()) cannot be
/// destroyed under that task: it is marked orphaned, and the awaiter of the step in flight
/// destroys it when the step ends (or when the awaiting frame is itself destroyed), as
/// Python's anext() awaitable keeps its generator alive. Otherwise the frame is destroyed now.
template <class Y, class S>
void release(Handle<Y, S> h) noexcept {
  Promise<Y, S>& p = h.promise();
  if (p.state == State::running) {
    p.orphaned = true;
    unregister_asyncgen(&p);  // no finalisation: it is destroyed, as promised
    return;
  }
  destroy(h);
}

/// What every step's awaiter shares: the step runs the body inside the awaiting task, and
/// whoever ends that step destroys an orphaned frame.
template <class Y, class S>
struct StepAwaiter {
  /// Where the one await an awaiter is good for stands:
  ///     fresh -> in_flight (await_suspend) -> done (await_resume)
  ///     fresh -> done                       (await_ready: ready, or throws)
  /// An await that finds it not fresh throws (Python: "cannot reuse already awaited ...").
  enum class Phase : unsigned char { fresh, in_flight, done };

  Handle<Y, S> h;
  Phase phase = Phase::fresh;

  StepAwaiter(Handle<Y, S> handle) noexcept : h(handle) {}  // NOLINT(google-explicit-constructor)
  StepAwaiter(const StepAwaiter& o) noexcept : h(o.h) {}    // (before the await: never in flight)
  StepAwaiter& operator=(const StepAwaiter&) = delete;
  /// The awaiting frame is destroyed in the middle of the step (its task was abandoned by a
  /// closing loop): an orphaned generator has nobody else to destroy it; one still owned can
  /// only be destroyed from now on (its body stopped at an await of a task that is gone), so
  /// it counts as finished and its owner destroys it.
  ~StepAwaiter() {
    if (phase != Phase::in_flight) return;
    Promise<Y, S>& p = h.promise();
    if (p.orphaned) {
      destroy(h);
    } else {
      p.mark_finished();
    }
  }

  /// Marks this awaiter used (by an await_ready that may go on to throw); throws `reuse` if it
  /// was already: `auto n = g.next(); co_await n; co_await n;` (Python: RuntimeError).
  [[gnu::noinline]] void first_await(const char* reuse) {
    if (phase != Phase::fresh) throw RuntimeError(reuse);
    phase = Phase::done;
  }

  template <class P>
  std::coroutine_handle<> start(std::coroutine_handle<P> caller) noexcept {
    phase = Phase::in_flight;
    return h.promise().resume_from(caller);
  }
  /// From await_resume: true when the step ran and its frame is orphaned: the caller takes
  /// what it needs from the promise and then calls destroy(h).
  bool step_over_orphaned() noexcept {
    if (phase != Phase::in_flight) return false;  // await_ready said ready: no step ran
    phase = Phase::done;
    return h.promise().orphaned;
  }
};

/// `co_await gen.next()`; the base of asend() and athrow(), which resume the body the same way
/// and end the same way (the next yielded value, empty at the end, or what escaped the body).
template <class Y, class S>
struct NextAwaiter : StepAwaiter<Y, S> {
  using StepAwaiter<Y, S>::h;

  NextAwaiter(Handle<Y, S> handle) noexcept : StepAwaiter<Y, S>(handle) {}  // NOLINT
  /// asend(v): the `co_yield` receives v.
  NextAwaiter(Handle<Y, S> handle,
              SentSlot<S> v) noexcept(std::is_nothrow_move_constructible_v<SentSlot<S>>)
      : StepAwaiter<Y, S>(handle), sent(std::move(v)) {}

  bool await_ready() {
    if (h && h.promise().state == State::suspended &&
        this->phase == StepAwaiter<Y, S>::Phase::fresh) [[likely]] {
      return false;  // (start() moves the phase on)
    }
    this->first_await(kReuseNext);
    return ready_slow(h, "anext(): asynchronous generator is already running");
  }
  // Out of line, so that the per-element path above inlines.
  [[gnu::noinline]] static bool ready_slow(Handle<Y, S> h, const char* running) {
    if (!h) throw RuntimeError(kEmptyMessage);
    switch (h.promise().state) {
      case State::running:
        throw RuntimeError(running);
      case State::finished:
        return true;
      default:  // created (suspended: only when asked by athrow's await_ready)
        return false;
    }
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
    Promise<Y, S>& p = h.promise();
    if (p.state == State::created) [[unlikely]] {
      register_asyncgen(&p);
    }
    if constexpr (!std::is_void_v<S>) p.sent = std::addressof(sent);
    return this->start(caller);
  }
  std::optional<Y> await_resume() {
    if (this->step_over_orphaned()) [[unlikely]]
      return orphan_result();
    Promise<Y, S>& p = h.promise();
    if (p.state == State::finished) [[unlikely]] {
      // What escaped the body is raised once; afterwards the generator is just exhausted.
      if (p.exception) std::rethrow_exception(std::exchange(p.exception, nullptr));
      return std::nullopt;
    }
    return std::optional<Y>(std::in_place, std::move(*p.value));
  }

 private:
  /// The step's outcome, taken out of an orphaned frame before it is destroyed.
  [[gnu::noinline]] std::optional<Y> orphan_result() {
    Promise<Y, S>& p = h.promise();
    std::optional<Y> out;
    std::exception_ptr error;
    if (p.state == State::finished) {
      error = std::exchange(p.exception, nullptr);
    } else {
      try {
        out.emplace(std::move(*p.value));
      } catch (...) {
        error = std::current_exception();
      }
    }
    destroy(h);
    if (error) std::rethrow_exception(error);
    return out;
  }

  [[no_unique_address]] SentSlot<S> sent{};  ///< what the `co_yield` receives
};

/// `co_await gen.asend(v)`: next() with `v` as the value of the `co_yield`.
template <class Y, class S>
struct ASendAwaiter : NextAwaiter<Y, S> {
  using NextAwaiter<Y, S>::NextAwaiter;
  using NextAwaiter<Y, S>::h;

  bool await_ready() {
    // Python raises TypeError for asend(non-None) here; asend() always sends a value.
    if (h && h.promise().state == State::created) [[unlikely]] {
      this->first_await(kReuseNext);
      throw RuntimeError("can't send non-None value to a just-started async generator");
    }
    return NextAwaiter<Y, S>::await_ready();
  }
};

/// `co_await gen.athrow(e)`: `e` is raised at the `co_yield` where the generator is suspended;
/// the step then ends as next() does.
template <class Y, class S>
struct AThrowAwaiter : NextAwaiter<Y, S> {
  using NextAwaiter<Y, S>::h;

  AThrowAwaiter(Handle<Y, S> handle, std::exception_ptr e) noexcept
      : NextAwaiter<Y, S>(handle), error(std::move(e)) {}

  bool await_ready() {
    this->first_await(kReuseClose);
    if (!error) throw ValueError("athrow() needs an exception, not a null exception_ptr");
    if (NextAwaiter<Y, S>::ready_slow(h, "athrow(): asynchronous generator is already running"))
      return true;  // finished: athrow() is empty, as in Python
    Promise<Y, S>& p = h.promise();
    if (p.state == State::created) {  // raised where the body would start; nothing runs
      p.mark_finished();
      unstarted = true;
      return true;
    }
    return false;
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
    h.promise().pending = std::move(error);
    return NextAwaiter<Y, S>::await_suspend(caller);
  }
  std::optional<Y> await_resume() {
    if (unstarted) std::rethrow_exception(error);
    return NextAwaiter<Y, S>::await_resume();
  }

 private:
  std::exception_ptr error;
  bool unstarted = false;  ///< the generator had not started: `error` is raised here
};

/// `co_await gen.aclose()` (and finalize()).
template <class Y, class S>
struct ACloseAwaiter : StepAwaiter<Y, S> {
  using StepAwaiter<Y, S>::StepAwaiter;
  using StepAwaiter<Y, S>::h;

  bool await_ready() {
    this->first_await(kReuseClose);
    if (!h) return true;
    Promise<Y, S>& p = h.promise();
    switch (p.state) {
      case State::running:
        throw RuntimeError("aclose(): asynchronous generator is already running");
      case State::created:  // never started: nothing to unwind
        p.mark_finished();
        return true;
      case State::finished:
        return true;
      case State::suspended:
        return false;
    }
    return true;
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
    h.promise().pending = std::make_exception_ptr(GeneratorExit{});
    return this->start(caller);
  }
  void await_resume() {
    if (!h) return;
    const bool orphaned = this->step_over_orphaned();
    Promise<Y, S>& p = h.promise();
    std::exception_ptr e = std::exchange(p.exception, nullptr);
    const bool ignored = p.state == State::suspended;  // it yielded again
    if (orphaned) {
      destroy(h);
    } else if (ignored) {  // leave it suspended for good
      p.mark_finished();
    }
    if (ignored) throw RuntimeError("async generator ignored GeneratorExit");
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const GeneratorExit&) {  // NOLINT(bugprone-empty-catch): the expected way out
      }
    }
  }
};

// Promise<Y, S>::finalize() is a coroutine returning Coro<void>, so it is defined in
// asyncio/generators.hpp, where Coro is complete.

/// async_for()'s `fn`: called with the value (an rvalue), returns void, bool, Coro<void> or
/// Coro<bool>.
template <class R>
inline constexpr bool kLoopBodyResult =
    std::is_void_v<R> || std::is_same_v<R, bool> || std::is_same_v<R, Coro<void>> ||
    std::is_same_v<R, Coro<bool>>;
template <class F, class Y>
concept LoopBody = std::invocable<F&, Y&&> && kLoopBodyResult<std::invoke_result_t<F&, Y&&>>;

}  // namespace detail::agen

}  // namespace asyncio
