// Internal: the engine under asyncio::AsyncGenerator<Y> (include/asyncio/generators.hpp).
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
// aclose() resumes a generator suspended at a `co_yield` with `closing` set; that `co_yield`
// throws GeneratorExit, which unwinds the body (destructors and catch blocks run; the body may
// co_await on the way out, still in the closing task) and which aclose() swallows when it
// leaves the body. A body that yields again instead is left suspended and aclose() throws
// RuntimeError; its frame is destroyed with the AsyncGenerator.
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

#include "asyncio/coroutines.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"

namespace asyncio {

template <class Y>
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
///     created -> finished                  (aclose() before the first next(): nothing runs)
///     suspended -> running -> finished     (aclose(): GeneratorExit unwinds the body)
///     suspended -> finished                (aclose() found GeneratorExit ignored)
/// `running` lasts while the body runs *or awaits* (its consumer's task is parked inside it):
/// a second next() or an aclose() meanwhile is an error.
enum class State : unsigned char { created, suspended, running, finished };

template <class Y>
struct Promise;
template <class Y>
using Handle = std::coroutine_handle<Promise<Y>>;

/// The awaiter of `co_yield`: hands control back to the consumer; on resumption, throws
/// GeneratorExit if the generator is being closed.
template <class Y>
struct YieldAwaiter {
  Promise<Y>* p;
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(Handle<Y> /*self*/) const noexcept {
    return p->suspend_to_consumer(State::suspended);
  }
  void await_resume() const {
    if (p->closing) [[unlikely]]
      throw GeneratorExit{};
  }
};

/// `co_yield lvalue`: the awaiter holds the copy that the consumer moves from.
template <class Y>
struct CopyYieldAwaiter : YieldAwaiter<Y> {
  Y copy;
  std::coroutine_handle<> await_suspend(Handle<Y> self) noexcept {
    this->p->value = std::addressof(copy);
    return YieldAwaiter<Y>::await_suspend(self);
  }
};

template <class Y>
struct Promise final : PromiseBase, AsyncGenFinalizer {
  ASYNCIO_DETAIL_PROMISE_CTOR(Promise)
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() = default;

  AsyncGenerator<Y> get_return_object() noexcept;
  void return_void() noexcept {}
  void unhandled_exception() noexcept { exception = std::current_exception(); }

  /// `co_yield rvalue`: the object lives in the co_yield expression, across the suspension.
  YieldAwaiter<Y> yield_value(Y&& v) noexcept {
    value = std::addressof(v);
    return {this};
  }
  /// `co_yield lvalue`: copied once, so the consumer never moves from the body's variable.
  CopyYieldAwaiter<Y> yield_value(const Y& v) requires std::copy_constructible<Y> {
    return {{this}, v};
  }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(Handle<Y> self) const noexcept {
      Promise& p = self.promise();
      EventLoop::unregister_asyncgen(&p);
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
    return transfer_to(Handle<Y>::from_promise(*this));
  }

  std::exception_ptr exception;  ///< what escaped the body (raised once by the next await)
  Y* value = nullptr;  ///< the object of the last co_yield (valid while suspended there)
  State state = State::created;
  bool closing = false;  ///< aclose() in progress: the co_yield throws GeneratorExit
  /// The AsyncGenerator was destroyed while a task was inside the body (next() or aclose() in
  /// flight): the frame lives on until that step ends, and the awaiter of that step destroys
  /// it (see release()).
  bool orphaned = false;
};

/// Destroys a generator's frame (destructors of everything alive in it run; nothing awaits).
template <class Y>
void destroy(Handle<Y> h) noexcept {
  EventLoop::unregister_asyncgen(&h.promise());
  h.destroy();
}

/// The AsyncGenerator lets go of its frame. One that a task is running (parked at an await
/// inside the body, on behalf of next() or aclose()) cannot be destroyed under that task: it is
/// marked orphaned, and the awaiter of the step in flight destroys it when the step ends (or
/// when the awaiting frame is itself destroyed), as Python's anext() awaitable keeps its
/// generator alive. Otherwise the frame is destroyed now.
template <class Y>
void release(Handle<Y> h) noexcept {
  Promise<Y>& p = h.promise();
  if (p.state == State::running) {
    p.orphaned = true;
    EventLoop::unregister_asyncgen(&p);  // no finalisation: it is destroyed, as promised
    return;
  }
  destroy(h);
}

/// What NextAwaiter and ACloseAwaiter share: the step they start runs the body inside the
/// awaiting task, and whoever ends that step destroys an orphaned frame.
template <class Y>
struct StepAwaiter {
  Handle<Y> h;
  bool in_flight = false;  ///< between await_suspend and await_resume

  StepAwaiter(Handle<Y> handle) noexcept : h(handle) {}  // NOLINT(google-explicit-constructor)
  StepAwaiter(const StepAwaiter& o) noexcept : h(o.h) {}  // (before the await: never in flight)
  StepAwaiter& operator=(const StepAwaiter&) = delete;
  /// The awaiting frame is destroyed in the middle of the step (its task was abandoned by a
  /// closing loop): an orphaned generator has nobody else to destroy it; one still owned can
  /// only be destroyed from now on (its body stopped at an await of a task that is gone), so
  /// it counts as finished and its owner destroys it.
  ~StepAwaiter() {
    if (!in_flight) return;
    Promise<Y>& p = h.promise();
    if (p.orphaned) {
      destroy(h);
    } else {
      p.state = State::finished;
      EventLoop::unregister_asyncgen(&p);
    }
  }

  template <class P>
  std::coroutine_handle<> start(std::coroutine_handle<P> caller) noexcept {
    in_flight = true;
    return h.promise().resume_from(caller);
  }
  /// From await_resume: the step is over. True when the frame is orphaned: the caller takes
  /// what it needs from the promise and then calls destroy(h).
  bool step_over() noexcept {
    in_flight = false;
    return h.promise().orphaned;
  }
};

/// `co_await gen.next()`.
template <class Y>
struct NextAwaiter : StepAwaiter<Y> {
  using StepAwaiter<Y>::StepAwaiter;
  using StepAwaiter<Y>::h;

  bool await_ready() const {
    if (h && h.promise().state == State::suspended) [[likely]]
      return false;
    return ready_slow(h);
  }
  // Out of line, so that the per-element path above inlines.
  [[gnu::noinline]] static bool ready_slow(Handle<Y> h) {
    if (!h) throw RuntimeError("AsyncGenerator is empty (moved from or default-constructed)");
    switch (h.promise().state) {
      case State::running:
        throw RuntimeError("anext(): asynchronous generator is already running");
      case State::finished:
        return true;
      default:  // created
        return false;
    }
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
    Promise<Y>& p = h.promise();
    if (p.state == State::created) [[unlikely]] {
      if (EventLoop* loop = tls_running_loop) loop->register_asyncgen(&p);
    }
    return this->start(caller);
  }
  std::optional<Y> await_resume() {
    if (this->in_flight && this->step_over()) [[unlikely]]
      return orphan_result();
    Promise<Y>& p = h.promise();
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
    Promise<Y>& p = h.promise();
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
};

/// `co_await gen.aclose()` (and finalize()).
template <class Y>
struct ACloseAwaiter : StepAwaiter<Y> {
  using StepAwaiter<Y>::StepAwaiter;
  using StepAwaiter<Y>::h;

  bool await_ready() const {
    if (!h) return true;
    Promise<Y>& p = h.promise();
    switch (p.state) {
      case State::running:
        throw RuntimeError("aclose(): asynchronous generator is already running");
      case State::created:  // never started: nothing to unwind
        p.state = State::finished;
        EventLoop::unregister_asyncgen(&p);
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
    h.promise().closing = true;
    return this->start(caller);
  }
  void await_resume() {
    if (!h) return;
    const bool orphaned = this->in_flight && this->step_over();
    Promise<Y>& p = h.promise();
    std::exception_ptr e = std::exchange(p.exception, nullptr);
    const bool ignored = p.state == State::suspended;  // it yielded again
    if (orphaned) {
      destroy(h);
    } else if (ignored) {  // leave it suspended for good
      p.state = State::finished;
      EventLoop::unregister_asyncgen(&p);
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

// A free function, so the coroutine holds the handle by value, not `this` by reference.
template <class Y>
Coro<void> finalize_frame(Handle<Y> h) {
  co_await ACloseAwaiter<Y>(h);
}

template <class Y>
Coro<void> Promise<Y>::finalize() {
  return finalize_frame<Y>(Handle<Y>::from_promise(*this));
}

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
