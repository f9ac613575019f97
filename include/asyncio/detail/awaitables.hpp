// Internal: what the combinators (asyncio/composition.hpp) accept, and how they turn it into
// a future: the awaitable concepts and traits, wrapping, child bookkeeping, result extraction.
// Future, Task and Outcome are only named here (forward-declared): what uses them is a template
// instantiated by the public headers (composition.hpp, timeouts.hpp), where they are complete.
// create_task() is found the same way, by argument-dependent lookup on the Coro it is given.
#pragma once

#include <concepts>
#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>
#include <vector>

#include "asyncio/detail/errors.hpp"
#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/promise.hpp"
#include "asyncio/detail/task_state.hpp"

namespace asyncio {
template <class T>
class Future;
template <class T>
class Task;
template <class T>
class Outcome;
}  // namespace asyncio

namespace asyncio::detail {

// ---- what an awaitable is, and turning it into a future ----------------------------------------

template <class T>
struct future_traits {
  static constexpr bool is_future = false;
  static constexpr bool is_coro = false;
};
template <class T>
struct future_traits<Future<T>> {
  static constexpr bool is_future = true;
  static constexpr bool is_coro = false;
  using value_type = T;
};
template <class T>
struct future_traits<Task<T>> : future_traits<Future<T>> {};
template <class T>
struct future_traits<Coro<T>> {
  static constexpr bool is_future = false;
  static constexpr bool is_coro = true;
  using value_type = T;
};

template <class A>
using plain_t = std::remove_cvref_t<A>;
/// A Future<T> or Task<T> handle (used as it is).
template <class A>
concept FutureHandle = future_traits<plain_t<A>>::is_future;
/// A Coro<T> (becomes a task; an lvalue is consumed, as `co_await c` consumes it).
template <class A>
concept CoroObject = future_traits<plain_t<A>>::is_coro;
/// What gather/wait_for/shield accept. Other awaitables must be movable, because they are
/// moved into the coroutine that runs them as a task (an awaiter that cannot move, such as
/// sleep()'s, can be wrapped in a coroutine).
template <class A>
concept MovableAwaitable = std::move_constructible<A> && Awaitable<A>;
template <class A>
concept Childlike = FutureHandle<A> || CoroObject<A> || MovableAwaitable<plain_t<A>>;

// SFINAE-friendly (no `type` for what is not awaitable): clang 14 substitutes into a function's
// return type before it checks the function's constraints.
template <class A>
struct result_of {};
template <class A>
requires(FutureHandle<A> || CoroObject<A>)
struct result_of<A> {
  using type = typename future_traits<plain_t<A>>::value_type;
};
template <class A>
requires(!FutureHandle<A> && !CoroObject<A> && Awaitable<plain_t<A>>)
struct result_of<A> {
  using type = std::remove_cvref_t<await_result_t<plain_t<A>>>;
};
/// The value an awaitable produces (void stays void; references decay, as Python copies none).
template <class A>
using result_of_t = typename result_of<A>::type;

/// Python's _wrap_awaitable: a coroutine that awaits `aw`, so that a task can run it.
template <class R, class A>
Coro<R> wrap_awaitable(A aw) {
  if constexpr (std::is_void_v<R>) {
    co_await std::move(aw);
  } else {
    co_return co_await std::move(aw);
  }
}

/// The awaitable as a coroutine that runs it inside the awaiting task: a Coro as it is (consumed,
/// even from an lvalue), anything else wrapped (Python's `await aw` in the awaiting coroutine).
template <class R, class A>
Coro<R> as_coro(A&& aw) {
  if constexpr (CoroObject<A>) {
    // A Coro is consumed even from an lvalue.
    return plain_t<A>(std::move(aw));  // NOLINT(bugprone-move-forwarding-reference)
  } else {
    return wrap_awaitable<R>(plain_t<A>(std::forward<A>(aw)));
  }
}

/// The awaitable as a combinator stores it until it is awaited: a Coro is moved out even from
/// an lvalue (awaiting consumes it anyway); anything else is copied or moved as given.
template <class A>
plain_t<A> stored(A&& aw) {
  if constexpr (CoroObject<A>) {
    // A Coro is consumed even from an lvalue.
    return plain_t<A>(std::move(aw));  // NOLINT(bugprone-move-forwarding-reference)
  } else {
    return plain_t<A>(std::forward<A>(aw));
  }
}

/// How a stored awaitable is awaited: a Future/Task handle as an lvalue (its result is copied:
/// others may share the state), anything else as an rvalue (a Coro is consumed anyway).
template <class A>
decltype(auto) as_awaited(A& aw) noexcept {
  if constexpr (FutureHandle<A>) {
    return (aw);
  } else {
    return std::move(aw);
  }
}

/// One child of a combinator: its state, and whether the combinator created it (then nobody
/// else can read its result, which may be moved out).
struct Child {
  Ref<FutureStateBase> state;
  bool owned = false;
};

/// Python's ensure_future, type-erased: a Coro/awaitable becomes a task on the running loop.
template <class A>
Child to_child(A&& aw) {
  using P = plain_t<A>;
  if constexpr (FutureHandle<P>) {
    if (aw.state() == nullptr) throw InvalidStateError("empty Task handle");
    return Child{Ref<FutureStateBase>(aw.state()), false};
  } else if constexpr (CoroObject<P>) {
    // Consumes an lvalue too; a consumed Coro makes create_task throw.
    P coro = std::move(aw);  // NOLINT(bugprone-move-forwarding-reference)
    auto task = create_task(std::move(coro));
    return Child{Ref<FutureStateBase>(task.state()), true};
  } else {
    auto task = create_task(wrap_awaitable<result_of_t<A>>(P(std::forward<A>(aw))));
    return Child{Ref<FutureStateBase>(task.state()), true};
  }
}

/// The child's value: moved out of a task the combinator owns, copied otherwise.
template <class T>
value_or_unit_t<T> take_result(FutureStateBase* st, bool owned) {
  if constexpr (std::is_void_v<T>) {
    return Unit{};
  } else {
    T* value = static_cast<T*>(st->result_ptr());
    if constexpr (!std::is_copy_constructible_v<T>) {
      return std::move(*value);
    } else {
      if (owned) return std::move(*value);
      return *value;
    }
  }
}

/// A done child as an Outcome (gather with return_exceptions): value, error or CancelledError.
/// Looking at the error marks it retrieved.
template <class T>
Outcome<value_or_unit_t<T>> outcome_of(FutureStateBase* st, bool owned) {
  using O = Outcome<value_or_unit_t<T>>;
  if (st->cancelled()) return O(st->make_cancelled_error());
  if (std::exception_ptr e = st->exception()) return O(std::move(e));
  return O(take_result<T>(st, owned));
}

/// Python 3.13's Task.uncancel(): withdraws one cancellation request, and when none is left
/// also drops a request still waiting to be delivered (so that a cancellation the caller
/// withdrew cannot surprise the task at its next suspension point). Used by timeout() and
/// task groups, which withdraw the cancellations they made themselves.
inline int withdraw_cancel(TaskState& task) noexcept {
  const int left = task.uncancel();
  if (left == 0) (void)task.consume_must_cancel();
  return left;
}

/// Marks `st`'s exception retrieved once it completes (Python: the combinators' done
/// callbacks call fut.exception() on children whose result nobody will read any more).
void retrieve_when_done(FutureStateBase* st) noexcept;

/// Implemented by the wait targets of combinators: the futures a parked task waits for, so that
/// format_task_tree() can draw who awaits whom.
class AwaitsFutures {
 public:
  virtual void awaited_futures(std::vector<FutureStateBase*>& out) const = 0;

 protected:
  AwaitsFutures() = default;
  AwaitsFutures(const AwaitsFutures&) = default;
  AwaitsFutures& operator=(const AwaitsFutures&) = default;
  ~AwaitsFutures() = default;
};

}  // namespace asyncio::detail
