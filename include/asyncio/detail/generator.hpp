// Internal: the engine under asyncio::Generator<Y, S> (include/asyncio/generators.hpp).
//
// A generator is a lazily started coroutine that suspends at every `co_yield`. The consumer
// (next(), send(), throw_(), the range-for iterator) resumes it and reads the value through a
// pointer: nothing is copied between the frame and the consumer except by next(), which returns
// the value itself.
//
// Delegation (`co_yield elements_of(inner)`, Python's `yield from`) forms a chain of frames:
//
//     consumer --resume--> [top = innermost frame]        (one indirect call per element)
//                          outer <-parent- middle <-parent- inner
//                            \______________ root ____________/   every frame points at one Root
//
// The chain shares one Root (it lives in the outermost promise): the frame to resume (`top`),
// the yielded value, the value sent in, and the state. So the consumer always resumes the
// innermost frame directly and reads its value directly, however deep the chain: no element
// passes through an intermediate frame. (An exception thrown in by throw_() is left in the
// innermost frame's promise, where its `co_yield` finds it.)
//
// Starting a delegation (the outer frame hands `top` to the inner one) and ending it (the inner
// frame's final_suspend hands `top` back to its parent) both suspend with state `handoff` and
// return to the consumer, whose resume() loop resumes the new `top`: a trampoline. Symmetric
// transfer would save that return, but it only keeps the native stack flat where the compiler
// emits the resume as a tail call, and g++ 12 at -O0 (and under ASan) does not: a chain of
// 100'000 nested generators then overflows the stack as it unwinds. The trampoline is flat at
// every optimisation level and costs nothing per element (one compare in resume()).
#pragma once

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <ranges>
#include <type_traits>
#include <utility>

#include <asyncio/detail/frame_alloc.hpp>
#include <asyncio/exceptions.hpp>

namespace asyncio {

template <class Y, class S>
class Generator;

/// `co_yield asyncio::elements_of(x)`: yield every element of `x` (Python's `yield from x`).
/// Holds a reference; it only lives for the `co_yield` expression. See generators.hpp.
template <class R>
struct elements_of {
  static_assert(std::is_reference_v<R>, "elements_of<R> holds a reference: use elements_of(x)");
  constexpr explicit elements_of(R r) noexcept : range(static_cast<R>(r)) {}
  R range;
};
template <class R>
elements_of(R&&) -> elements_of<R&&>;

namespace detail::gen {

/// Where a generator is in its life, as Python's inspect.getgeneratorstate() tells it:
///     created -> running -> suspended -> running -> ... -> finished
///     created | suspended -> finished   (close(), or throw_() into a created generator)
///     running -> handoff -> running      (a delegation starts or ends: resume() resumes the
///                                         chain's new top; never seen outside resume())
/// The outermost frame's final_suspend sets `finished`; so after resuming, "state is still
/// running" alone means "a value was yielded" (one compare on the hot path), and before
/// resuming, "state > suspended" alone means "cannot resume".
/// `running` is what makes a re-entrant next() from the generator's own body an error.
enum class State : unsigned char { created, suspended, running, handoff, finished };

/// Stands in for the argument of send() when S is void (send() is then not callable).
struct NoSend {
  NoSend() = delete;
};

template <class S>
using SentPtr = std::conditional_t<std::is_void_v<S>, NoSend*, S*>;

template <class Y, class S>
struct Promise;

/// `co_yield lvalue` copies: Y is a copyable object type.
template <class Y>
concept CopyYieldable = !std::is_reference_v<Y> && std::copy_constructible<Y>;

/// Anything but a std::exception_ptr (Generator::throw_(E&&) makes one of it).
template <class E>
concept NotExceptionPtr = !std::same_as<std::remove_cvref_t<E>, std::exception_ptr>;

/// An lvalue reference to a G.
template <class R, class G>
concept LvalueOf = std::is_lvalue_reference_v<R> && std::same_as<std::remove_cvref_t<R>, G>;

/// An input range whose elements convert to Y, other than the generator type G itself
/// (`co_yield elements_of(range)`).
template <class R, class Y, class G>
concept RangeOf =
    std::ranges::input_range<R> && std::convertible_to<std::ranges::range_reference_t<R>, Y> &&
    !std::same_as<std::remove_cvref_t<R>, G>;

template <class Y, class S>
using Handle = std::coroutine_handle<Promise<Y, S>>;

/// What one delegation chain shares; lives in the outermost promise (see the file comment).
template <class Y, class S>
struct Root {
  Handle<Y, S> top;                     ///< innermost frame: the one that next() resumes
  std::remove_reference_t<Y>* value{};  ///< the object of the last co_yield
  SentPtr<S> sent{};                    ///< send()'s argument, read by `co_yield` on resume
  State state = State::created;
};

/// Gives the engine access to Generator's handle without making it public.
struct Access {
  template <class G>
  static auto handle(const G& g) noexcept {
    return g.handle_;
  }
  template <class G>
  static bool closed(const G& g) noexcept {
    return g.closed_;
  }
  template <class G>
  static void release(G& g) noexcept {
    g.handle_ = nullptr;
  }
  template <class Y, class S>
  static Generator<Y, S> make(Handle<Y, S> h) noexcept {
    return Generator<Y, S>(h);
  }
};

/// The `co_yield v` awaiter for a value that outlives the suspension (a temporary of the
/// co_yield full-expression, or an lvalue when Y is a reference). Its result is the sent value.
template <class Y, class S>
struct YieldAwaiter {
  Promise<Y, S>* promise;

  // Non-static members throughout: clang-tidy flags a static one at every co_yield.
  constexpr bool await_ready() const noexcept { return false; }
  constexpr void await_suspend(std::coroutine_handle<>) const noexcept {}
  S await_resume() const {
    if (promise->pending) [[unlikely]]
      raise(promise->pending);
    // promise->root, not a copy: the chain's root changes if this generator is delegated to.
    if constexpr (!std::is_void_v<S>) return std::move(*promise->root->sent);
  }

 private:
  [[noreturn, gnu::noinline, gnu::cold]] static void raise(std::exception_ptr& e) {
    std::rethrow_exception(std::exchange(e, nullptr));
  }
};

/// `co_yield lvalue` with a value Y: the consumer may move from what it reads, so it reads a
/// copy that lives in this awaiter (in the frame), never the generator's own variable.
template <class Y, class S>
struct CopyYieldAwaiter : YieldAwaiter<Y, S> {
  Y copy;

  void await_suspend(std::coroutine_handle<>) noexcept {
    this->promise->root->value = std::addressof(copy);
  }
};

/// `co_yield elements_of(std::move(inner))`: run `inner` in place of the delegating frame
/// until it finishes; its exception, if any, is rethrown at the delegating `co_yield`.
/// Owns `inner`, so destroying the delegating frame (close(), abandonment) destroys the
/// whole chain below it, innermost frame first.
template <class Y, class S>
class DelegateAwaiter {
 public:
  explicit DelegateAwaiter(Generator<Y, S>&& inner) noexcept : inner_(std::move(inner)) {}

  /// Checks `inner` before the awaiter takes ownership of it (so that a refused generator
  /// stays with its owner). A finished or closed inner is fine: it yields nothing.
  /// Throws: RuntimeError (moved-from inner), ValueError (inner is running: the generator
  ///   delegating to itself).
  static void check(const Generator<Y, S>& inner) {
    Handle<Y, S> h = Access::handle(inner);
    if (!h && !Access::closed(inner))
      throw RuntimeError("elements_of(): the generator is empty (moved from)");
    if (h && h.promise().own_root.state == State::running)
      throw ValueError("generator already executing");
  }

  bool await_ready() const noexcept {
    Handle<Y, S> h = Access::handle(inner_);
    return !h || h.promise().own_root.state == State::finished;
  }

  /// Splices inner's chain (inner may itself be partly consumed, suspended in its own
  /// delegation) under `outer`'s root and hands off to its innermost frame.
  void await_suspend(Handle<Y, S> outer) noexcept {
    Handle<Y, S> inner = Access::handle(inner_);
    Root<Y, S>* root = outer.promise().root;
    Handle<Y, S> top = inner.promise().own_root.top;
    for (Handle<Y, S> h = top;; h = h.promise().parent) {
      h.promise().root = root;
      if (h == inner) break;
    }
    inner.promise().parent = outer;
    inner.promise().owner = &inner_;
    root->top = top;
    root->state = State::handoff;
    // A partly consumed inner resumes from its co_yield: Python sends it None, here S{}.
    if constexpr (!std::is_void_v<S>) root->sent = std::addressof(none_);
  }

  void await_resume() const {
    Handle<Y, S> h = Access::handle(inner_);
    if (h && h.promise().error) std::rethrow_exception(std::exchange(h.promise().error, nullptr));
  }

 private:
  struct Empty {};
  Generator<Y, S> inner_;
  [[no_unique_address]] std::conditional_t<std::is_void_v<S>, Empty, std::remove_cv_t<S>> none_{};
};

/// Ends a frame: a delegated frame hands the chain's top back to its parent (resume() goes
/// on with it); the outermost one just returns to whoever resumed it.
template <class Y, class S>
struct FinalAwaiter {
  constexpr bool await_ready() const noexcept { return false; }
  void await_suspend(Handle<Y, S> h) const noexcept {
    Promise<Y, S>& p = h.promise();
    if (p.parent) {
      p.root->top = p.parent;
      p.root->state = State::handoff;
    } else {
      p.root->state = State::finished;
    }
  }
  constexpr void await_resume() const noexcept {}
};

template <class Y, class S>
struct Promise {
  Root<Y, S> own_root;           ///< the chain's shared state while this frame is outermost
  Root<Y, S>* root = &own_root;  ///< the chain this frame runs in
  Handle<Y, S> parent;           ///< the frame delegating to this one (null when outermost)
  Generator<Y, S>* owner{};      ///< when delegated to: the DelegateAwaiter's generator
  std::exception_ptr error;      ///< what escaped the body; rethrown to the consumer/parent
  std::exception_ptr pending;    ///< throw_()'s exception, raised by the `co_yield` on resume

  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

  Generator<Y, S> get_return_object() noexcept {
    own_root.top = Handle<Y, S>::from_promise(*this);
    return Access::make(own_root.top);
  }
  constexpr std::suspend_always initial_suspend() const noexcept { return {}; }
  constexpr FinalAwaiter<Y, S> final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
  constexpr void return_void() const noexcept {}

  /// `co_yield value` (value Y: an rvalue; reference Y: anything that binds to it).
  YieldAwaiter<Y, S> yield_value(std::conditional_t<std::is_reference_v<Y>, Y, Y&&> v) noexcept {
    root->value = std::addressof(v);
    return {this};
  }

  /// `co_yield lvalue` with a value Y: yields a copy (see CopyYieldAwaiter).
  template <CopyYieldable U = Y>
  CopyYieldAwaiter<Y, S> yield_value(const std::type_identity_t<U>& v) {
    return {{this}, v};
  }

  /// `co_yield elements_of(std::move(g))`: delegate to g (same Y and S).
  DelegateAwaiter<Y, S> yield_value(elements_of<Generator<Y, S>&&> e) {
    DelegateAwaiter<Y, S>::check(e.range);
    return DelegateAwaiter<Y, S>(std::move(e.range));
  }

  /// `co_yield elements_of(lvalue_generator)`: rejected, the delegating frame must own it.
  template <LvalueOf<Generator<Y, S>> G>
  void yield_value(elements_of<G>) {
    static_assert(!std::is_lvalue_reference_v<G>,
                  "co_yield elements_of(g) takes ownership: write elements_of(std::move(g))");
  }

  /// `co_yield elements_of(range)` for any other input range whose elements convert to Y:
  /// delegates to a small generator that walks the range (values sent in are dropped).
  template <RangeOf<Y, Generator<Y, S>> R>
  DelegateAwaiter<Y, S> yield_value(elements_of<R> e) {
    return DelegateAwaiter<Y, S>(walk<R>(std::addressof(e.range)));
  }

  /// A synchronous generator cannot `co_await` (Python: `await` outside an async function).
  template <class A>
  void await_transform(A&&) {
    static_assert(sizeof(A*) == 0,
                  "a Generator cannot co_await; an AsyncGenerator can (Python: `await` needs "
                  "`async def`)");
  }

 private:
  // The range lives in the co_yield full-expression that this generator's frame runs inside.
  template <class R>
  static Generator<Y, S> walk(std::remove_reference_t<R>* range) {
    for (auto&& e : *range) co_yield static_cast<decltype(e)>(e);
  }
};

/// Destroys the frame `h` owned by a Generator, and the chain of frames it is delegating to.
/// Innermost first, one at a time: destroying a delegating frame destroys its DelegateAwaiter,
/// whose generator would destroy the next frame from inside that destructor, and so on, one
/// native stack frame per level (a 100'000-deep recursive generator abandoned midway would
/// overflow the stack). So each inner frame is released from its owner first.
template <class Y, class S>
void destroy_chain(Handle<Y, S> h) noexcept {
  Promise<Y, S>& p = h.promise();
  // A frame delegated to by another is only destroyed by its owner once done (or released).
  if (p.root == &p.own_root && !h.done()) {
    for (Handle<Y, S> f = p.own_root.top; f != h;) {
      Handle<Y, S> parent = f.promise().parent;
      Access::release(*f.promise().owner);
      f.destroy();
      f = parent;
    }
  }
  h.destroy();
}

/// resume() when the generator cannot be resumed: finished, or running (re-entered).
[[gnu::noinline, gnu::cold]] inline bool refuse_resume(State st) {
  if (st == State::running || st == State::handoff) throw ValueError("generator already executing");
  return false;
}

/// resume() when the chain did not just yield: a delegation started or ended (resume the
/// chain's new top until something yields: the trampoline), or the outermost frame finished.
template <class Y, class S>
[[gnu::noinline]] bool resume_slow(Handle<Y, S> h) {
  Root<Y, S>& r = h.promise().own_root;
  while (r.state == State::handoff) {
    r.state = State::running;
    r.top.resume();
  }
  if (r.state == State::running) {
    r.state = State::suspended;
    return true;
  }
  if (h.promise().error) std::rethrow_exception(std::exchange(h.promise().error, nullptr));
  return false;
}

/// Resumes the chain of the outermost frame `h` once, delivering `sent` to the `co_yield`.
/// Returns true when a value was yielded (read it from own_root.value), false when the
/// generator finished. Rethrows what escaped the body.
/// Throws: ValueError if the generator is running (a re-entrant call from its own body).
template <class Y, class S>
inline bool resume(Handle<Y, S> h, SentPtr<S> sent) {
  Root<Y, S>& r = h.promise().own_root;
  if (r.state > State::suspended) [[unlikely]]
    return refuse_resume(r.state);
  if constexpr (!std::is_void_v<S>) r.sent = sent;
  r.state = State::running;
  // Not delegating, the top is `h` itself: resuming `h` lets the compiler see which frame runs
  // (clang then calls its resume function directly and may allocate the frame on the stack).
  if (r.top == h) [[likely]]
    h.resume();
  else
    r.top.resume();
  if (r.state != State::running) [[unlikely]]
    return resume_slow(h);
  r.state = State::suspended;
  return true;
}

}  // namespace detail::gen
}  // namespace asyncio
