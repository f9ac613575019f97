// asyncio/coroutines.hpp - Coro<T>, the type of every coroutine function (Python: coroutines.py).
//
//   asyncio::Coro<int> add_one(int x) { co_await asyncio::sleep(0); co_return x + 1; }
//
// A Coro is lazy: calling add_one(1) runs nothing. `co_await add_one(1)` runs it inside the
// awaiting task (symmetric transfer, no new task, no trip through the loop);
// `create_task(add_one(1))` schedules it as a Task. Either consumes the Coro; a second use throws
// RuntimeError. Frames come from a per-thread recycling allocator (detail/frame_alloc.hpp).
//
// Also part of this module, defined under it in detail/promise.hpp (the engine uses them too):
//   Unit            the value of a `void` result inside tuples and Outcome (Python: None);
//   Awaiter         something with await_ready/await_suspend/await_resume;
//   Awaitable       anything `co_await` accepts (Python: collections.abc.Awaitable);
//   await_result_t  the type `co_await a` yields for an awaitable A.
#pragma once

#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

#include "asyncio/detail/promise.hpp"
#include "asyncio/exceptions.hpp"

namespace asyncio {

namespace detail {
/// What a Coro<void> that finished without a frame points at (Coro<void>::finished): the name it
/// reports in place of its function's. Instances are static, so the Coro needs no storage.
struct FinishedCoro {
  const char* function;
};
/// A frame that finishes at once, named `function`: a finished Coro<void> scheduled as a task.
std::coroutine_handle<CoroPromise<void>> finished_frame(const char* function);

/// An operation that stands in for a Coro<T>'s frame (Coro<T>::deferred): the form of a
/// coroutine function's common case that is kept in the object it works on and reused, so that
/// calling and awaiting it allocates no frame and adds no resumption (StreamReader::read).
/// Awaiting calls ready(); when that says false, suspend(); then finish(), which gives the
/// outcome and ends the use. Scheduling it (a task) calls frame(), which ends it too; a Coro
/// dropped before it finishes (or whose ready() threw) calls release(). Each use ends once:
/// after that the op may be reused or freed at once. Only one Coro holds an op at a time; the
/// op's owner tells when it is free.
template <class T>
class CoroOp {
 public:
  CoroOp(const CoroOp&) = delete;
  CoroOp& operator=(const CoroOp&) = delete;
  CoroOp(CoroOp&&) = delete;
  CoroOp& operator=(CoroOp&&) = delete;

  /// True when finish() can be called at once. May throw: the await throws it. When it returns
  /// false, suspend() must not fail (a running task to park is one of the things it checks).
  virtual bool ready() = 0;
  /// Parks the running task, to be resumed at `caller`.
  virtual void suspend(std::coroutine_handle<> caller) noexcept = 0;
  /// The outcome, after ready() said true or the task was resumed; ends this use of the op,
  /// also when it throws.
  virtual T finish() = 0;
  /// Ends this use of the op when finish() will not (dropped unawaited, or mid-await).
  virtual void release() noexcept = 0;
  /// A coroutine frame that does what the op would, for a task; ends this use too.
  virtual std::coroutine_handle<CoroPromise<T>> frame() = 0;

  const char* function;  ///< the name it reports in place of a coroutine function's

 protected:
  explicit CoroOp(const char* fn) noexcept : function(fn) {}
  ~CoroOp() = default;
};
}  // namespace detail

/// The return type of a coroutine function. Lazy, move-only, awaitable exactly once.
/// Awaiting a consumed (already awaited or scheduled) Coro throws RuntimeError.
/// Cancellation: a Coro has no cancellation of its own; it runs inside the awaiting task and
///   sees that task's CancelledError at its own suspension points.
/// Python: a coroutine object (the result of calling an `async def` function)
template <class T = void>
class [[nodiscard]] Coro {
  static_assert(!std::is_reference_v<T>, "Coro<T&> is not supported; return a pointer");

 public:
  using promise_type = detail::CoroPromise<T>;
  using value_type = T;
  using handle_type = std::coroutine_handle<promise_type>;

  explicit Coro(handle_type h) noexcept : h_(h) {}
  Coro(Coro&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Coro& operator=(Coro&& o) noexcept {
    if (this != &o) {
      destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Coro(const Coro&) = delete;
  Coro& operator=(const Coro&) = delete;
  ~Coro() { destroy(); }

  /// Internal: a Coro<void> that has already finished and has no frame, for a coroutine
  /// function's fast path (StreamWriter::drain() when nothing needs to wait). Awaiting it returns
  /// at once; scheduling it makes a task that finishes at once; both consume it, as for any Coro.
  /// `what` (a static object) names it in diagnostics.
  static Coro finished(const detail::FinishedCoro& what) noexcept
  requires std::is_void_v<T>
  {
    return Coro(tagged(&what, kFinishedTag));
  }

  /// Internal: a Coro whose work is done by `op` rather than by a frame (see detail::CoroOp).
  /// Awaiting it runs the op inside the awaiting task; scheduling it makes a frame of it; both
  /// consume it, as for any Coro.
  static Coro deferred(detail::CoroOp<T>& op) noexcept { return Coro(tagged(&op, kOpTag)); }

  /// True while the Coro can still be awaited or scheduled.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }
  /// The coroutine function's name (for diagnostics).
  [[nodiscard]] const char* name() const noexcept {
    if (is_finished(h_)) return finished_info(h_)->function;
    if (is_op(h_)) return op_of(h_)->function;
    return h_ ? h_.promise().function : "<consumed coroutine>";
  }

  /// The awaiter of `co_await coro`: it takes the frame over from the Coro (which is consumed
  /// from then on), runs it inside the awaiting task, and destroys it at the end of the await.
  class Awaiter {
   public:
    explicit Awaiter(Coro&& c) noexcept : h_(std::exchange(c.h_, {})) {}
    Awaiter(Awaiter&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    Awaiter& operator=(Awaiter&&) = delete;
    ~Awaiter() {
      if (!h_) return;
      if (is_op(h_)) {  // awaited or not, its use ends with the await
        op_of(h_)->release();
        return;
      }
      // (A finished Coro's tagged handle is still here only if await_ready never ran.)
      if (h_.address() != detail::tls_destroyed_child && !is_finished(h_)) h_.destroy();
    }

    bool await_ready() {
      if (!h_) throw RuntimeError("cannot reuse already awaited coroutine");
      if (is_op(h_)) return op_of(h_)->ready();
      if (is_finished(h_)) {  // (only a Coro<void> can be): the outcome is there already
        h_ = {};
        slot_.state = detail::SyncSlot<T>::kValue;
        return true;
      }
      return false;
    }
    /// Runs the child right here, on the native stack, while it does not suspend: when it
    /// finishes at once (the common case), the caller continues without suspending, and no
    /// frame is resumed through its dispatch. When it suspends, the caller suspends too and the
    /// child's end resumes it by transfer. Past kMaxSyncDepth nested runs (deep recursion),
    /// the child starts through the task step's driver instead, keeping the stack bounded.
    template <class P>
    bool await_suspend(std::coroutine_handle<P> caller) noexcept {
      if (is_op(h_)) {  // the caller itself waits: it stays the task's innermost frame
        op_of(h_)->suspend(caller);
        return true;
      }
      promise_type& child = h_.promise();
      detail::tls_leaf = &child;
      std::coroutine_handle<>* const next = detail::tls_trampoline;
      if (detail::tls_sync_depth >= detail::kMaxSyncDepth && next != nullptr) [[unlikely]] {
        child.set_continuation(caller);
        *next = h_;
        return true;
      }
      child.set_continuation(caller);
      const detail::SyncRun outer = std::exchange(detail::tls_sync_run, {&slot_, &child});
      ++detail::tls_sync_depth;
      h_.resume();
      --detail::tls_sync_depth;
      detail::tls_sync_run = outer;
      if (slot_.state != detail::SyncSlot<T>::kEmpty) {  // finished; the frame is gone
        h_ = {};
        if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
          detail::tls_leaf = &caller.promise();
        } else {
          detail::tls_leaf = nullptr;
        }
        return false;
      }
      return true;
    }
    T await_resume() {
      if (!h_) {  // finished while this awaiter waited on the stack: the outcome is here
        if (slot_.state == detail::SyncSlot<T>::kError) [[unlikely]]
          std::rethrow_exception(slot_.error);
        if constexpr (std::is_void_v<T>) {
          return;
        } else {
          return std::move(slot_.value);
        }
      }
      if (is_op(h_)) return op_of(std::exchange(h_, {}))->finish();
      promise_type& p = h_.promise();
      if (std::exception_ptr* e = p.error_ptr()) std::rethrow_exception(*e);
      if constexpr (!std::is_void_v<T>) return std::move(p.value());
    }

   private:
    handle_type h_;
    detail::SyncSlot<T> slot_;
  };
  /// Runs the coroutine to completion inside the awaiting task; returns its result or rethrows.
  Awaiter operator co_await() & noexcept { return Awaiter(std::move(*this)); }
  Awaiter operator co_await() && noexcept { return Awaiter(std::move(*this)); }

  /// Internal: destroys the frame unrun, without the "never awaited" report. Python: close()
  void close() noexcept {
    if (is_op(h_)) {
      op_of(std::exchange(h_, {}))->release();
      return;
    }
    if (h_ && !is_finished(h_)) h_.destroy();
    h_ = {};
  }
  /// Internal: hands the frame to a Task. Empty handle if the Coro was consumed. A finished
  /// Coro gets a frame that finishes at once.
  handle_type release_for_task() {
    if constexpr (std::is_void_v<T>) {
      if (is_finished(h_))
        return detail::finished_frame(finished_info(std::exchange(h_, {}))->function);
    }
    if (is_op(h_)) return op_of(std::exchange(h_, {}))->frame();
    return std::exchange(h_, {});
  }

 private:
  // A handle that is not a frame's: an object's address with one tag bit set (frames are
  // 16-aligned, so no frame looks like it).
  static constexpr std::uintptr_t kFinishedTag = 1;  // a static FinishedCoro (Coro<void> only)
  static constexpr std::uintptr_t kOpTag = 2;        // a detail::CoroOp<T>

  static std::uintptr_t bits(handle_type h) noexcept {
    return reinterpret_cast<std::uintptr_t>(h.address());
  }
  static handle_type tagged(const void* object, std::uintptr_t tag) noexcept {
    const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(object) | tag;
    // NOLINTNEXTLINE(performance-no-int-to-ptr): a tagged pointer to `object`
    return handle_type::from_address(reinterpret_cast<void*>(address));
  }
  static void* untagged(handle_type h, std::uintptr_t tag) noexcept {
    // NOLINTNEXTLINE(performance-no-int-to-ptr): the object a tagged handle points at
    return reinterpret_cast<void*>(bits(h) & ~tag);
  }
  static bool is_op(handle_type h) noexcept { return (bits(h) & kOpTag) != 0; }
  static detail::CoroOp<T>* op_of(handle_type h) noexcept {
    return static_cast<detail::CoroOp<T>*>(untagged(h, kOpTag));
  }
  static bool is_finished(handle_type h) noexcept {
    if constexpr (std::is_void_v<T>) {
      return (bits(h) & kFinishedTag) != 0;
    } else {
      return false;
    }
  }
  static const detail::FinishedCoro* finished_info(handle_type h) noexcept {
    return static_cast<const detail::FinishedCoro*>(untagged(h, kFinishedTag));
  }

  void destroy() noexcept {
    if (!h_) return;
    if (is_op(h_)) {
      detail::CoroOp<T>* op = op_of(std::exchange(h_, {}));
      detail::report_never_awaited(op->function);
      op->release();
      return;
    }
    if (is_finished(h_)) {
      detail::report_never_awaited(finished_info(std::exchange(h_, {}))->function);
      return;
    }
    // Awaiting or scheduling takes the frame: one still here never ran.
    detail::report_never_awaited(h_.promise().function);
    std::exchange(h_, {}).destroy();
  }

  handle_type h_;
};

namespace detail {
template <class T>
Coro<T> CoroPromise<T>::get_return_object() noexcept {
  return Coro<T>(std::coroutine_handle<CoroPromise<T>>::from_promise(*this));
}
inline Coro<void> CoroPromise<void>::get_return_object() noexcept {
  return Coro<void>(std::coroutine_handle<CoroPromise<void>>::from_promise(*this));
}
inline std::coroutine_handle<CoroPromise<void>> finished_frame(const char* function) {
  std::coroutine_handle<CoroPromise<void>> h =
      []() -> Coro<void> { co_return; }().release_for_task();
  h.promise().function = function;
  return h;
}
}  // namespace detail

}  // namespace asyncio
