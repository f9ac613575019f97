// Internal: what lies under Coro<T> (asyncio/coroutines.hpp): the promise every Coro frame
// carries, the word that links a frame to its awaiter or its task, how a finished frame hands
// its outcome over, and the per-thread state of a task step (leaf frame, trampoline, depth).
// Also the awaitable vocabulary the whole engine uses - Unit, the Awaiter and Awaitable
// concepts, await_result_t - which are public names (documented with Coro in coroutines.hpp)
// defined here so that detail headers need no public header.
#pragma once

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#if defined(__GNUC__) && !defined(__clang__)
#include <source_location>
#endif

#include "asyncio/detail/frame_alloc.hpp"

namespace asyncio {

/// The value of a `void` result inside tuples and Outcome (gather). Python: None
struct Unit {
  friend constexpr bool operator==(Unit, Unit) noexcept { return true; }
};

/// Something with await_ready/await_suspend/await_resume.
template <class A>
concept Awaiter = requires(A a, std::coroutine_handle<> h) {
  { a.await_ready() } -> std::convertible_to<bool>;
  a.await_suspend(h);
  a.await_resume();
};

/// Anything `co_await` accepts: an Awaiter, or a type with operator co_await.
/// Python: collections.abc.Awaitable
template <class A>
concept Awaitable = Awaiter<A> || requires(A&& a) {
  { std::forward<A>(a).operator co_await() } -> Awaiter;
} || requires(A&& a) {
  { operator co_await(std::forward<A>(a)) } -> Awaiter;
};

namespace detail {

template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
    return std::forward<A>(a).operator co_await();
  } else if constexpr (requires { operator co_await(std::forward<A>(a)); }) {
    return operator co_await(std::forward<A>(a));
  } else {
    return std::forward<A>(a);
  }
}

}  // namespace detail

/// The type `co_await a` yields for an awaitable `A`.
template <Awaitable A>
using await_result_t = decltype(detail::get_awaiter(std::declval<A>()).await_resume());

template <class T>
class Coro;

namespace detail {
/// T, or Unit for void (how a void result is stored in tuples, Outcome and SyncSlot).
template <class T>
using value_or_unit_t = std::conditional_t<std::is_void_v<T>, Unit, T>;
}  // namespace detail

namespace detail {

class TaskState;
struct PromiseBase;

/// While a task step runs: the task's innermost Coro frame (for the task tree). Awaits write it
/// unconditionally (one store, no test); the step saves it into its task when it ends, and
/// outside task steps nobody reads it.
inline thread_local PromiseBase* tls_leaf = nullptr;

/// While a task step runs: the driver's "resume this next" slot (null otherwise).
inline thread_local std::coroutine_handle<>* tls_trampoline = nullptr;

/// Whether awaits go through the task step's trampoline. Symmetric transfer keeps the stack flat
/// only when the compiler makes it a tail call: clang always does; g++ 12 only with
/// optimisation and without ASan. Elsewhere the trampoline does it (same execution order, a
/// few more instructions per await). The build decides once (CMake's ASYNCIO_TRAMPOLINE, which
/// reaches consumers as a compile definition and through asyncio.pc), so that code built with
/// other flags than the library sees the same inline definitions; without it (headers used
/// directly), the compiler's own flags decide.
#if defined(ASYNCIO_TRAMPOLINE)
inline constexpr bool kTrampoline = ASYNCIO_TRAMPOLINE != 0;
#elif !defined(__clang__) && (!defined(__OPTIMIZE__) || defined(__SANITIZE_ADDRESS__))
inline constexpr bool kTrampoline = true;
#else
inline constexpr bool kTrampoline = false;
#endif

/// What an await_suspend returns to transfer control to `h`. With the trampoline, inside a task
/// step `h` is handed to the step's driver loop and the current resume() returns, so the stack
/// depth stays constant however long the await chain. Otherwise: plain symmetric transfer.
inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> h) noexcept {
  if constexpr (kTrampoline) {
    if (std::coroutine_handle<>* next = tls_trampoline) {
      *next = h;
      return std::noop_coroutine();
    }
  }
  return h;
}

/// How many `co_await coro` are running their child synchronously on this thread's stack
/// (Coro::Awaiter). Past kMaxSyncDepth a child starts by transfer instead, so deep recursion
/// keeps a bounded native stack.
inline thread_local int tls_sync_depth = 0;
inline constexpr int kMaxSyncDepth = 64;

/// Called by a task's root frame `root` when it finishes (final suspend point); `result` points
/// at the returned value (null for void; not to be read when the body threw), `error` at what
/// escaped the body (null when it returned).
void task_root_done(TaskState* task, std::coroutine_handle<> root, void* result,
                    std::exception_ptr* error) noexcept;
/// Debug mode: a Coro was destroyed without ever being awaited or scheduled.
void report_never_awaited(const char* function) noexcept;

/// Carries the coroutine function's name into its promise (no implicit conversions, so no
/// coroutine parameter can ever be taken for it).
struct FunctionName {
  const char* name;
};

/// How a promise learns its coroutine function's name: from a default argument evaluated where
/// the coroutine is called. Clang's __builtin_FUNCTION() gives the name ("fetch"); g++ 12 gives
/// "" there, but a std::source_location parameter defaulted to current() gives the signature
/// ("asyncio::Coro<int> fetch(int)"), which diagnostics shorten (detail::function_display_name).
#if defined(__GNUC__) && !defined(__clang__)
#define ASYNCIO_DETAIL_PROMISE_CTOR(Name)                                              \
  explicit Name(std::source_location where = std::source_location::current()) noexcept \
      : PromiseBase(where.function_name()) {}
#else
#define ASYNCIO_DETAIL_PROMISE_CTOR(Name)                                      \
  explicit Name(FunctionName fn = FunctionName{__builtin_FUNCTION()}) noexcept \
      : PromiseBase(fn.name) {}
#endif

/// Where a Coro that finishes while its awaiter waits on the native stack leaves its outcome
/// before its frame destroys itself (Coro::Awaiter, CoroFinal). A void result is a Unit.
template <class T>
struct SyncSlot {
  using Stored = std::conditional_t<std::is_void_v<T>, Unit, std::remove_const_t<T>>;
  enum : std::uint8_t { kEmpty, kValue, kError };
  SyncSlot() noexcept {}  // NOLINT(modernize-use-equals-default): the union stays empty
  SyncSlot(const SyncSlot&) = delete;
  SyncSlot& operator=(const SyncSlot&) = delete;
  ~SyncSlot() {
    if (state == kValue) {
      value.~Stored();
    } else if (state == kError) {
      error.~exception_ptr();
    }
  }
  union {
    Stored value;
    std::exception_ptr error;
  };
  std::uint8_t state = kEmpty;
};

/// The innermost `co_await coro` waiting on the native stack for its child (Coro::Awaiter):
/// its SyncSlot, and the child's promise. Saved and restored around each such run, and cleared
/// for a task step, so while it is set the Coro frame that reaches its final suspend point is
/// always `child`: only that awaiter or the task step's driver resume Coro frames, and a frame
/// the driver resumed never finishes inside another frame's synchronous run. Keeping this here
/// rather than a pointer to the promise in every final awaiter and a flag in every promise
/// keeps a g++ frame 16 bytes smaller (docs/design/loop.md, "Memory").
struct SyncRun {
  void* slot;          ///< the awaiter's SyncSlot<T> (null: no synchronous run)
  PromiseBase* child;  ///< the frame it runs
};
inline thread_local SyncRun tls_sync_run{};

/// While a pending task's frames are destroyed innermost first (TaskState::abandon): the frame
/// just destroyed, which the awaiter in the next frame out still names and must not destroy
/// again. Null otherwise.
inline thread_local void* tls_destroyed_child = nullptr;

/// The part of every Coro promise that the runtime reads without knowing T. (What escaped the
/// body is kept by the derived promise, CoroPromise<T>, in one word with the value.)
struct PromiseBase : PoolAllocated {
  const char* function;  ///< the coroutine function's name

  explicit PromiseBase(const char* fn) noexcept : function(fn) {}

  /// This frame is awaited by `h`, which resumes when it finishes. When `h` is a Coro-family
  /// frame too, it becomes this frame's parent in the task tree. Called before the body
  /// ends (it resets the outcome flags).
  template <class P>
  void set_continuation(std::coroutine_handle<P> h) noexcept {
    auto link = reinterpret_cast<std::uintptr_t>(h.address());
    if constexpr (std::is_base_of_v<PromiseBase, P>) {
      // Folds to a constant: where P's PromiseBase sits in its frame.
      const auto offset = reinterpret_cast<char*>(static_cast<PromiseBase*>(&h.promise())) -
                          static_cast<char*>(h.address());
      if (offset == kOffsetInFrame) link |= kHasParent;
    }
    link_ = link;
  }
  /// The awaiting frame given to set_continuation() (null when there is none).
  [[nodiscard]] std::coroutine_handle<> continuation() const noexcept {
    if ((link_ & kTask) != 0) return {};
    // NOLINTNEXTLINE(performance-no-int-to-ptr): a tagged pointer, stored as an integer
    return std::coroutine_handle<>::from_address(reinterpret_cast<void*>(link_ & ~kTagMask));
  }
  /// The Coro frame awaiting this one (task tree); null for a task's root, or when the awaiting
  /// coroutine is of another kind.
  [[nodiscard]] PromiseBase* parent() const noexcept {
    if ((link_ & kHasParent) == 0) return nullptr;
    // NOLINTNEXTLINE(performance-no-int-to-ptr): a tagged pointer, stored as an integer
    return in_frame(reinterpret_cast<void*>(link_ & ~kTagMask));
  }
  /// Whether the frame awaiting this one owns it through its `co_await coro` awaiter (a
  /// Coro's frame), rather than it being owned elsewhere (an async generator's frame belongs to
  /// its AsyncGenerator). TaskState::abandon() relies on it to take a chain apart.
  [[nodiscard]] bool owned_by_awaiter() const noexcept { return (link_ & kOwnedElsewhere) == 0; }
  /// This frame is the root of task `t` (set before the frame first runs).
  void set_task(TaskState* t) noexcept { link_ = reinterpret_cast<std::uintptr_t>(t) | kTask; }
  /// The task whose root this frame is (null for an awaited frame).
  [[nodiscard]] TaskState* task() const noexcept {
    if ((link_ & kTask) == 0) return nullptr;
    // NOLINTNEXTLINE(performance-no-int-to-ptr): a tagged pointer, stored as an integer
    return reinterpret_cast<TaskState*>(link_ & ~kTagMask);
  }
  /// Where every Coro promise's PromiseBase sits in its frame (GCC and Clang lay a frame out as
  /// resume pointer, destroy pointer, promise; a promise aligned to at most 16 bytes follows
  /// at once). Code that relies on it checks it first or asserts it.
  static constexpr std::ptrdiff_t kOffsetInFrame = 2 * sizeof(void*);
  /// The PromiseBase of the Coro frame at `frame`.
  static PromiseBase* in_frame(void* frame) noexcept {
    return reinterpret_cast<PromiseBase*>(static_cast<char*>(frame) + kOffsetInFrame);
  }

  std::suspend_always initial_suspend() noexcept { return {}; }

  /// What a finished frame does when it suspends at its final point (CoroFinal decides whether
  /// it suspends): resume the awaiting frame, or report to the task whose root it is.
  struct FinalAwaiter {
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      PromiseBase& p = h.promise();
      const std::uintptr_t link = p.link_;
      if ((link & kTask) == 0) {
        if ((link & ~kTagMask) == 0) return std::noop_coroutine();  // neither awaited nor a task
        tls_leaf = p.parent();
        return transfer_to(std::coroutine_handle<>::from_address(
            reinterpret_cast<void*>(link & ~kTagMask)));  // NOLINT(performance-no-int-to-ptr)
      }
      task_root_done(p.task(), h, h.promise().result_ptr(), h.promise().error_ptr());
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };

 protected:
  [[nodiscard]] bool has_value() const noexcept { return (link_ & kHasValue) != 0; }
  void mark_value() noexcept { link_ |= kHasValue; }
  void clear_value() noexcept { link_ &= ~kHasValue; }
  [[nodiscard]] bool has_error() const noexcept { return (link_ & kHasError) != 0; }
  void mark_error() noexcept { link_ |= kHasError; }
  /// After set_continuation(): the awaiting frame does not own this one (async generators).
  void mark_owned_elsewhere() noexcept { link_ |= kOwnedElsewhere; }

 private:
  // One word says who takes over when the frame finishes, and two facts about this frame:
  //   bits 3..63  the awaiting frame (a nested Coro) or the TaskState whose root this is;
  //   bit 0       set: a TaskState (a frame is never both awaited and a task's root);
  //   bit 1       set: the awaiting frame is a Coro-family frame, whose PromiseBase sits at
  //               kOffsetInFrame in it (the parent in the task tree);
  //   bit 2       set: the body returned a value that has a destructor to run;
  //   bit 3       set: an exception escaped the body (the outcome word holds it).
  //   bit 2 also says, in the frame of an async generator (which keeps no value in its
  //   promise), that the awaiting frame does not own this one (owned_by_awaiter()).
  // Frames and task states are 16-aligned, so the low four bits are free. This word
  // replaces four (continuation, task, parent, and which of value and exception is live).
  static constexpr std::uintptr_t kTask = 1;
  static constexpr std::uintptr_t kHasParent = 2;
  static constexpr std::uintptr_t kHasValue = 4;
  static constexpr std::uintptr_t kHasError = 8;
  static constexpr std::uintptr_t kOwnedElsewhere = kHasValue;
  static constexpr std::uintptr_t kTagMask = 15;
  std::uintptr_t link_ = 0;
};

template <class T>
struct CoroFinal;

template <class T>
struct CoroPromise : PromiseBase {
  using Stored = std::remove_const_t<T>;  // (Coro<const X> works as with std::optional<const X>)
  ASYNCIO_DETAIL_PROMISE_CTOR(CoroPromise)
  CoroFinal<T> final_suspend() noexcept;
  CoroPromise(const CoroPromise&) = delete;
  CoroPromise& operator=(const CoroPromise&) = delete;
  ~CoroPromise() {
    if (has_error()) {
      error_.~exception_ptr();
    } else if constexpr (!std::is_trivially_destructible_v<T>) {
      if (has_value()) value_.~Stored();
    }
  }
  Coro<T> get_return_object() noexcept;
  // Two overloads rather than one by value: `co_return local;` moves once, not twice.
  void return_value(Stored&& v) {
    ::new (static_cast<void*>(std::addressof(value_))) Stored(std::move(v));
    if constexpr (!std::is_trivially_destructible_v<T>) mark_value();
  }
  void return_value(const Stored& v) {
    ::new (static_cast<void*>(std::addressof(value_))) Stored(v);
    if constexpr (!std::is_trivially_destructible_v<T>) mark_value();
  }
  void unhandled_exception() noexcept {
    // A local's throwing destructor can get here after `co_return v` stored the value.
    if constexpr (!std::is_trivially_destructible_v<T>) {
      if (has_value()) {
        value_.~Stored();
        clear_value();
      }
    }
    ::new (static_cast<void*>(&error_)) std::exception_ptr(std::current_exception());
    mark_error();
  }
  /// The returned value. Valid once the body has finished without an exception: a non-void
  /// coroutine that finishes normally has returned a value (flowing off its end is undefined).
  void* result_ptr() noexcept { return std::addressof(value_); }
  /// The returned value (the body returned normally).
  T& value() noexcept { return value_; }
  /// What escaped the body; null when it returned (or has not finished).
  std::exception_ptr* error_ptr() noexcept { return has_error() ? &error_ : nullptr; }

 private:
  // A body ends with a value or an exception, never both, so one union holds either (one word
  // for a small T). Which is live follows from how the body ended; the flags sit in link_ (the
  // value's only when T has a destructor to run).
  union {
    Stored value_;
    std::exception_ptr error_;
  };
};

template <>
struct CoroPromise<void> : PromiseBase {
  ASYNCIO_DETAIL_PROMISE_CTOR(CoroPromise)
  CoroFinal<void> final_suspend() noexcept;
  Coro<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void unhandled_exception() noexcept {
    error_ = std::current_exception();
    mark_error();
  }
  static void* result_ptr() noexcept { return nullptr; }
  std::exception_ptr* error_ptr() noexcept { return has_error() ? &error_ : nullptr; }

 private:
  std::exception_ptr error_;
};

/// A Coro frame's final suspend point. While its awaiter waits on the native stack, the
/// outcome moves into the awaiter's SyncSlot and the frame does not suspend: it destroys itself
/// right away (inline code, no call through the frame's destroy pointer later) and returns to
/// the awaiter. Otherwise it suspends as PromiseBase::FinalAwaiter says. It holds nothing: g++
/// keeps every awaiter in the frame, and the promise is found through tls_sync_run.
template <class T>
struct CoroFinal : PromiseBase::FinalAwaiter {
  bool await_ready() noexcept {
    const SyncRun run = tls_sync_run;
    if (run.slot == nullptr) return false;
    auto* p = static_cast<CoroPromise<T>*>(run.child);
    auto* slot = static_cast<SyncSlot<T>*>(run.slot);
    if (std::exception_ptr* e = p->error_ptr()) [[unlikely]] {
      ::new (static_cast<void*>(&slot->error)) std::exception_ptr(std::move(*e));
      slot->state = SyncSlot<T>::kError;
    } else {
      if constexpr (std::is_void_v<T>) {
        ::new (static_cast<void*>(std::addressof(slot->value))) Unit{};
      } else {
        ::new (static_cast<void*>(std::addressof(slot->value)))
            typename SyncSlot<T>::Stored(std::move(p->value()));
      }
      slot->state = SyncSlot<T>::kValue;
    }
    return true;
  }
};

template <class T>
CoroFinal<T> CoroPromise<T>::final_suspend() noexcept {
  return {};
}
inline CoroFinal<void> CoroPromise<void>::final_suspend() noexcept {
  return {};
}

}  // namespace detail

}  // namespace asyncio
