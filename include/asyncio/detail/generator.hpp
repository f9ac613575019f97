// Internal: the engine under asyncio::Generator<Y, S, R> (include/asyncio/generators.hpp).
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
// The frames of one chain may differ in their return type R (`int r = co_yield elements_of(
// inner())` with a void outer), so everything the chain needs lives in the R-free base of the
// promise, Frame<Y, S>, and the chain links frames by Frame pointers. Only the outermost frame's
// handle is typed (the Generator's); a DelegateAwaiter, which knows its inner's R, reads the
// inner's return value (Promise<Y, S, R>::returned) when the delegation ends.
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
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

#include <asyncio/detail/errors.hpp>
#include <asyncio/detail/frame_alloc.hpp>

namespace asyncio {

template <class Y, class S, class R>
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
struct Frame;
template <class Y, class S, class R>
struct Promise;

/// `co_yield lvalue` copies: Y is a copyable object type.
template <class Y>
concept CopyYieldable = !std::is_reference_v<Y> && std::copy_constructible<Y>;

/// Anything but a std::exception_ptr (Generator::throw_(E&&) makes one of it).
template <class E>
concept NotExceptionPtr = !std::same_as<std::remove_cvref_t<E>, std::exception_ptr>;

/// True for Generator<Y, S, R> with any R: what `co_yield elements_of(g)` can delegate to.
template <class G, class Y, class S>
inline constexpr bool kGeneratorOf = false;
template <class Y, class S, class R>
inline constexpr bool kGeneratorOf<Generator<Y, S, R>, Y, S> = true;

/// An lvalue reference to a Generator<Y, S, R> (any R).
template <class G, class Y, class S>
concept LvalueGenerator =
    std::is_lvalue_reference_v<G> && kGeneratorOf<std::remove_cvref_t<G>, Y, S>;

/// An input range whose elements convert to Y, other than a Generator<Y, S, R> (which is
/// delegated to, not walked): `co_yield elements_of(range)`.
template <class Rg, class Y, class S>
concept RangeOf =
    std::ranges::input_range<Rg> && std::convertible_to<std::ranges::range_reference_t<Rg>, Y> &&
    !kGeneratorOf<std::remove_cvref_t<Rg>, Y, S>;

template <class Y, class S, class R>
using Handle = std::coroutine_handle<Promise<Y, S, R>>;

/// What one delegation chain shares; lives in the outermost promise (see the file comment).
template <class Y, class S>
struct Root {
  std::coroutine_handle<> top;          ///< innermost frame: the one that next() resumes
  Frame<Y, S>* top_frame{};             ///< its promise
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
  /// Takes the frame out of `g`, which is left empty.
  template <class G>
  static auto take(G& g) noexcept {
    return std::exchange(g.handle_, nullptr);
  }
  template <class Y, class S, class R>
  static Generator<Y, S, R> make(Handle<Y, S, R> h) noexcept {
    return Generator<Y, S, R>(h);
  }
};

/// Destroys the frame `p` owned by a Generator (or a DelegateAwaiter), and the chain of frames
/// it is delegating to. Innermost first, one at a time: destroying a delegating frame destroys
/// its DelegateAwaiter, which would destroy the next frame from inside that destructor, and so
/// on, one native stack frame per level (a 100'000-deep recursive generator abandoned midway
/// would overflow the stack). So each inner frame is released from its owner first.
template <class Y, class S>
void destroy_chain(Frame<Y, S>& p) noexcept {
  // A frame delegated to by another is only destroyed by its owner once done (or released).
  if (p.root == &p.own_root && !p.self.done()) {
    for (Frame<Y, S>* f = p.own_root.top_frame; f != &p;) {
      Frame<Y, S>* parent = f->parent;
      *f->owner = nullptr;
      f->self.destroy();
      f = parent;
    }
  }
  p.self.destroy();
}

/// The `co_yield v` awaiter for a value that outlives the suspension (a temporary of the
/// co_yield full-expression, or an lvalue when Y is a reference). Its result is the sent value.
template <class Y, class S>
struct YieldAwaiter {
  Frame<Y, S>* promise;

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

/// `R r = co_yield elements_of(std::move(inner))`: run `inner` in place of the delegating frame
/// until it finishes; its exception, if any, is rethrown at the delegating `co_yield`, and
/// otherwise the `co_yield` evaluates to its return value (R). Owns `inner`'s frame, so
/// destroying the delegating frame (close(), abandonment) destroys the whole chain below it,
/// innermost frame first.
template <class Y, class S, class R>
class DelegateAwaiter {
 public:
  explicit DelegateAwaiter(Generator<Y, S, R>&& inner) noexcept {
    if (Handle<Y, S, R> h = Access::take(inner)) inner_ = &h.promise();
  }
  DelegateAwaiter(const DelegateAwaiter&) = delete;
  DelegateAwaiter& operator=(const DelegateAwaiter&) = delete;
  ~DelegateAwaiter() {
    if (inner_ != nullptr) destroy_chain(*inner_);
  }

  /// Checks `inner` before the awaiter takes ownership of it (so that a refused generator
  /// stays with its owner). A finished or closed inner is fine: it yields nothing.
  /// Throws: RuntimeError (moved-from inner), ValueError (inner is running: the generator
  ///   delegating to itself).
  static void check(const Generator<Y, S, R>& inner) {
    Handle<Y, S, R> h = Access::handle(inner);
    if (!h && !Access::closed(inner))
      throw RuntimeError("elements_of(): the generator is empty (moved from)");
    if (h && h.promise().own_root.state == State::running)
      throw ValueError("generator already executing");
  }

  bool await_ready() const noexcept {
    return inner_ == nullptr || inner_->own_root.state == State::finished;
  }

  /// Splices inner's chain (inner may itself be partly consumed, suspended in its own
  /// delegation) under `outer`'s root and hands off to its innermost frame.
  template <class P>
  void await_suspend(std::coroutine_handle<P> outer_handle) noexcept {
    Frame<Y, S>& outer = outer_handle.promise();
    Frame<Y, S>& inner = *inner_;
    Root<Y, S>* root = outer.root;
    Frame<Y, S>* top = inner.own_root.top_frame;
    for (Frame<Y, S>* f = top;; f = f->parent) {
      f->root = root;
      if (f == &inner) break;
    }
    inner.parent = &outer;
    inner.owner = &inner_;
    root->top = top->self;
    root->top_frame = top;
    root->state = State::handoff;
    // A partly consumed inner resumes from its co_yield: Python sends it None, here S{}.
    if constexpr (!std::is_void_v<S>) root->sent = std::addressof(none_);
  }

  /// Rethrows what escaped the inner generator, or returns what it returned.
  /// Throws: the inner's exception; RuntimeError when R is not void and the inner has no
  ///   return value (it was closed, or ended by an exception before this delegation).
  R await_resume() {
    if (inner_ != nullptr && inner_->error)
      std::rethrow_exception(std::exchange(inner_->error, nullptr));
    if constexpr (!std::is_void_v<R>) {
      auto* inner = static_cast<Promise<Y, S, R>*>(inner_);
      if (inner == nullptr || !inner->returned) [[unlikely]]
        throw RuntimeError(
            "elements_of(): the generator has no return value (it was closed, or it ended by "
            "an exception)");
      return std::move(*inner->returned);
    }
  }

 private:
  struct Empty {};
  Frame<Y, S>* inner_ = nullptr;  ///< nulled by destroy_chain when it destroys the frame
  [[no_unique_address]] std::conditional_t<std::is_void_v<S>, Empty, std::remove_cv_t<S>> none_{};
};

/// Ends a frame: a delegated frame hands the chain's top back to its parent (resume() goes
/// on with it); the outermost one just returns to whoever resumed it.
template <class Y, class S>
struct FinalAwaiter {
  constexpr bool await_ready() const noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) const noexcept {
    Frame<Y, S>& p = h.promise();
    if (p.parent != nullptr) {
      p.root->top = p.parent->self;
      p.root->top_frame = p.parent;
      p.root->state = State::handoff;
    } else {
      p.root->state = State::finished;
    }
  }
  constexpr void await_resume() const noexcept {}
};

/// The part of a generator's promise that does not depend on its return type: everything a
/// delegation chain needs.
template <class Y, class S>
struct Frame {
  Root<Y, S> own_root;           ///< the chain's shared state while this frame is outermost
  Root<Y, S>* root = &own_root;  ///< the chain this frame runs in
  Frame* parent{};               ///< the frame delegating to this one (null when outermost)
  Frame** owner{};               ///< when delegated to: the DelegateAwaiter's pointer to it
  std::coroutine_handle<> self;  ///< this frame
  std::exception_ptr error;      ///< what escaped the body; rethrown to the consumer/parent
  std::exception_ptr pending;    ///< throw_()'s exception, raised by the `co_yield` on resume

  constexpr std::suspend_always initial_suspend() const noexcept { return {}; }
  constexpr FinalAwaiter<Y, S> final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }

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

  /// `co_yield elements_of(std::move(g))`: delegate to g (same Y and S, any R); the
  /// `co_yield` evaluates to g's return value.
  template <class R>
  DelegateAwaiter<Y, S, R> yield_value(elements_of<Generator<Y, S, R>&&> e) {
    DelegateAwaiter<Y, S, R>::check(e.range);
    return DelegateAwaiter<Y, S, R>(std::move(e.range));
  }

  /// `co_yield elements_of(lvalue_generator)`: rejected, the delegating frame must own it.
  template <class G>
  requires LvalueGenerator<G, Y, S>
  void yield_value(elements_of<G>) {
    static_assert(!std::is_lvalue_reference_v<G>,
                  "co_yield elements_of(g) takes ownership: write elements_of(std::move(g))");
  }

  /// `co_yield elements_of(range)` for any other input range whose elements convert to Y:
  /// delegates to a small generator that walks the range (values sent in are dropped).
  template <RangeOf<Y, S> Rg>
  DelegateAwaiter<Y, S, void> yield_value(elements_of<Rg> e) {
    return DelegateAwaiter<Y, S, void>(walk<Rg>(std::addressof(e.range)));
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
  template <class Rg>
  static Generator<Y, S, void> walk(std::remove_reference_t<Rg>* range) {
    for (auto&& e : *range) co_yield static_cast<decltype(e)>(e);
  }
};

/// Where `co_return v;` puts v (Python: StopIteration.value); a void R has `co_return;` only.
template <class R>
struct ReturnSlot {
  std::optional<R> returned;  ///< set by `co_return v;`, read by return_value() / delegation

  void return_value(R&& v) { returned.emplace(std::move(v)); }
  void return_value(const R& v)
  requires std::copy_constructible<R>
  {
    returned.emplace(v);
  }
};
template <>
struct ReturnSlot<void> {
  constexpr void return_void() const noexcept {}
};

template <class Y, class S, class R>
struct Promise : Frame<Y, S>, ReturnSlot<R> {
  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

  Generator<Y, S, R> get_return_object() noexcept {
    Handle<Y, S, R> h = Handle<Y, S, R>::from_promise(*this);
    this->self = h;
    this->own_root.top = h;
    this->own_root.top_frame = this;
    return Access::make(h);
  }
};

/// resume() when the generator cannot be resumed: finished, or running (re-entered).
[[gnu::noinline, gnu::cold]] inline bool refuse_resume(State st) {
  if (st == State::running || st == State::handoff) throw ValueError("generator already executing");
  return false;
}

/// resume() when the chain did not just yield: a delegation started or ended (resume the
/// chain's new top until something yields: the trampoline), or the outermost frame finished.
template <class Y, class S>
[[gnu::noinline]] bool resume_slow(Frame<Y, S>& outermost) {
  Root<Y, S>& r = outermost.own_root;
  while (r.state == State::handoff) {
    r.state = State::running;
    r.top.resume();
  }
  if (r.state == State::running) {
    r.state = State::suspended;
    return true;
  }
  if (outermost.error) std::rethrow_exception(std::exchange(outermost.error, nullptr));
  return false;
}

/// Resumes the chain of the outermost frame `h` once, delivering `sent` to the `co_yield`.
/// Returns true when a value was yielded (read it from own_root.value), false when the
/// generator finished. Rethrows what escaped the body.
/// Throws: ValueError if the generator is running (a re-entrant call from its own body).
template <class Y, class S, class R>
inline bool resume(Handle<Y, S, R> h, SentPtr<S> sent) {
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
    return resume_slow<Y, S>(h.promise());
  r.state = State::suspended;
  return true;
}

}  // namespace detail::gen
}  // namespace asyncio
