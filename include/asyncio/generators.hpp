// asyncio/generators.hpp - generators (Python: generator functions, `yield`, `yield from`).
//
//     asyncio::Generator<int> count_to(int n) {          // def count_to(n):
//       for (int i = 1; i <= n; ++i) co_yield i;          //     for i in range(1, n + 1): yield i
//     }
//     for (int i : count_to(3)) std::cout << i;           // for i in count_to(3): print(i)
//
//     asyncio::Generator<int, int> generator_coroutine() {  // def generator_coroutine():
//       std::puts("callee 1");                               //     print('callee 1')
//       int x = co_yield 1;                                  //     x = yield 1
//       std::printf("callee 2: %d\n", x);                    //     print('callee 2: %d' % x)
//       x = co_yield 2;                                      //     x = yield 2
//     }
//     auto task = generator_coroutine();
//     auto i = task.next();      // i == 1, prints "callee 1"
//     i = task.send(10);         // i == 2, prints "callee 2: 10"
//
//     co_yield asyncio::elements_of(inner());                // yield from inner()
//
// Synchronous generators live here; the engine is in detail/generator.hpp. How Python's
// generator API maps, and what does not: docs/howto/generators.md.
#pragma once

#include <cassert>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

#include <asyncio/coroutines.hpp>
#include <asyncio/detail/async_generator.hpp>
#include <asyncio/detail/generator.hpp>
#include <asyncio/exceptions.hpp>

namespace asyncio::detail::agen {

// A free function, so the coroutine holds the handle by value, not `this` by reference.
template <class Y, class S>
Coro<void> finalize_frame(Handle<Y, S> h) {
  co_await ACloseAwaiter<Y, S>(h);
}

template <class Y, class S>
Coro<void> Promise<Y, S>::finalize() {
  return finalize_frame<Y, S>(Handle<Y, S>::from_promise(*this));
}

}  // namespace asyncio::detail::agen

namespace asyncio {

/// A synchronous generator: a lazily started coroutine that produces values with `co_yield`,
/// when S is not void receives values with `S x = co_yield y;`, and when R is not void ends
/// with `co_return r;` (Python's generator and generator-based coroutine; the parameters are
/// those of Python's typing.Generator[YieldType, SendType, ReturnType]).
///
/// Y is what is yielded: an object type (next() returns std::optional<Y>, moved out of the
/// generator), or an lvalue reference `T&` / `const T&` (no copy at all; next() returns
/// std::optional<std::reference_wrapper<T>>). S is what send() delivers; void for none.
/// S must be default-constructible: S{} plays Python's None (what next() sends). R is what the
/// body returns (an object type, read with return_value(); `R r = co_yield elements_of(g)`
/// evaluates to it); void for none. With a non-void R the body must end with `co_return r;`
/// (flowing off its end is undefined behaviour, as in any coroutine that returns a value).
///
/// Move-only. Destroying (or close()-ing) a suspended generator destroys its frame, which runs
/// the destructors of everything alive at the `co_yield` where it stopped, innermost delegated
/// generator first (Python's GeneratorExit, as RAII). Nothing runs before the first next().
/// A generator cannot `co_await`; that is AsyncGenerator.
/// Python: generator (types.GeneratorType)
template <class Y, class S = void, class R = void>
class [[nodiscard]] Generator {
  static_assert(!std::is_rvalue_reference_v<Y>, "Generator<T&&>: yield T (moved) or T& instead");
  static_assert(std::is_lvalue_reference_v<Y> || (std::is_object_v<Y> && !std::is_array_v<Y> &&
                                                  !std::is_const_v<Y> && !std::is_volatile_v<Y>),
                "Generator<Y>: Y must be a non-const object type or an lvalue reference");
  static_assert(std::is_void_v<S> || (std::is_object_v<S> && !std::is_const_v<S> &&
                                      std::default_initializable<S> && std::move_constructible<S>),
                "Generator<Y, S>: S must be void or a default-constructible, movable object type "
                "(S{} stands for Python's None)");
  static_assert(std::is_void_v<R> || (std::is_object_v<R> && !std::is_array_v<R> &&
                                      !std::is_const_v<R> && std::move_constructible<R>),
                "Generator<Y, S, R>: R must be void or a non-const, movable object type");

  using Handle = detail::gen::Handle<Y, S, R>;

 public:
  using promise_type = detail::gen::Promise<Y, S, R>;
  using value_type = std::remove_cvref_t<Y>;
  /// What the iterator gives: the yielded object itself (no copy).
  using reference = std::remove_reference_t<Y>&;
  /// What next()/send()/throw_() return inside the optional.
  using next_type = std::conditional_t<std::is_reference_v<Y>,
                                       std::reference_wrapper<std::remove_reference_t<Y>>, Y>;
  /// send()'s parameter (an uninhabited type when S is void).
  using send_type = std::conditional_t<std::is_void_v<S>, detail::gen::NoSend, S>;
  /// What the body returns with `co_return r;` (void: nothing).
  using return_type = R;

  class iterator;

  /// An empty generator, like a moved-from one: using it throws RuntimeError.
  Generator() noexcept = default;
  Generator(Generator&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)),
        closed_(std::exchange(other.closed_, false)) {}
  Generator& operator=(Generator&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, nullptr);
      closed_ = std::exchange(other.closed_, false);
    }
    return *this;
  }
  ~Generator() { destroy(); }

  /// Runs the generator to its next `co_yield` and returns the value; empty once it has
  /// finished (and on every later call). With a non-void S, the `co_yield` receives S{}.
  /// Throws: what the body throws (once; the generator is then finished), RuntimeError
  ///   (moved-from), ValueError (called from the generator's own body).
  /// Python: next(gen), gen.send(None)
  std::optional<next_type> next() {
    if (!handle_) return empty_or_throw();
    return take(step(handle_));
  }

  /// Resumes the generator with `value` as the result of the `co_yield` where it is suspended;
  /// returns the next yielded value, empty once finished.
  /// Throws: RuntimeError if the generator has not started (start it with next()) or is
  ///   moved-from, ValueError (called from its own body), what the body throws.
  /// Python: gen.send(value)
  std::optional<next_type> send(send_type value)
  requires(!std::is_void_v<S>)
  {
    if (!handle_) return empty_or_throw();
    if (handle_.promise().own_root.state == detail::gen::State::created)
      throw RuntimeError("can't send non-None value to a just-started generator");
    return take(detail::gen::resume(handle_, std::addressof(value)));
  }

  /// Raises `e` inside the generator at the `co_yield` where it is suspended (in the innermost
  /// delegated generator). If the body catches it and yields again, returns that value; if it
  /// returns, returns empty; otherwise `e` (or whatever escapes) propagates from here and the
  /// generator is finished. A not yet started or finished generator rethrows `e` at once (a
  /// not yet started one is closed first).
  /// Throws: `e` or what the body throws, ValueError (null `e`, or called from its own body),
  ///   RuntimeError (moved-from).
  /// Python: gen.throw(e)
  // A sink: `e` is moved into the generator's frame (clang-tidy 14 misses the move).
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  std::optional<next_type> throw_(std::exception_ptr e) {
    if (!e) throw ValueError("throw_() needs an exception, not a null exception_ptr");
    if (!handle_) {
      if (!closed_) throw_empty();
      std::rethrow_exception(e);
    }
    using detail::gen::State;
    detail::gen::Root<Y, S>& r = handle_.promise().own_root;
    switch (r.state) {
      case State::running:
      case State::handoff:
        throw ValueError("generator already executing");
      case State::created:  // Python: raised where the body would start; the generator is done
        close();
        std::rethrow_exception(e);
      case State::finished:
        std::rethrow_exception(e);
      case State::suspended:
        break;
    }
    r.top_frame->pending = std::move(e);  // raised by the innermost frame's co_yield
    return take(step(handle_));
  }
  /// throw_(std::make_exception_ptr(e)): `gen.throw_(asyncio::ValueError("bad"))`.
  template <detail::gen::NotExceptionPtr E>
  std::optional<next_type> throw_(E&& e) {
    return throw_(std::make_exception_ptr(std::forward<E>(e)));
  }

  /// Finishes the generator now: destroys its frame, running the destructors of everything
  /// alive at the `co_yield` where it is suspended. Later next()/send() return empty. A no-op
  /// on a finished, closed or empty generator. (Python runs `except GeneratorExit:` and
  /// `finally:` blocks here; C++ runs destructors, so put such clean-up in RAII objects.)
  /// Throws: ValueError if called from the generator's own body.
  /// Python: gen.close()
  void close() {
    if (!handle_) return;
    if (handle_.promise().own_root.state == detail::gen::State::running)
      throw ValueError("generator already executing");
    detail::gen::destroy_chain<Y, S>(handle_.promise());
    handle_ = nullptr;
    closed_ = true;
  }

  /// What the body returned with `co_return r;` once it has finished (next() returned empty);
  /// a reference to the value, which stays in the generator until it is closed or destroyed
  /// (move from it if you like). Unlike Python's StopIteration.value, it can be read at any
  /// time after the end, not only by the call that finished the generator.
  /// Throws: InvalidStateError if the body has not returned (not finished yet, ended by an
  ///   exception, or closed), RuntimeError (moved-from).
  /// Python: StopIteration.value; the value of `yield from gen`
  // (add_lvalue_reference_t: with a void R these declarations must still be well-formed.)
  std::add_lvalue_reference_t<R> return_value()
  requires(!std::is_void_v<R>)
  {
    return *returned();
  }
  std::add_lvalue_reference_t<const R> return_value() const
  requires(!std::is_void_v<R>)
  {
    return *returned();
  }

  /// Resumes the generator to its first (next) value: `for (auto& v : gen)` continues a
  /// partly consumed generator, as Python's `for` does. Input iterator, single pass.
  /// Throws: RuntimeError (moved-from), and as next().
  iterator begin() {
    if (!handle_) {
      if (!closed_) throw_empty();
      return iterator{};
    }
    return step(handle_) ? iterator{handle_} : iterator{};
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  friend struct detail::gen::Access;
  explicit Generator(Handle h) noexcept : handle_(h) {}

  /// Resumes with S{} (Python's None) as the value of the `co_yield`.
  static bool step(Handle h) {
    if constexpr (std::is_void_v<S>) {
      return detail::gen::resume(h, nullptr);
    } else {
      S none{};
      return detail::gen::resume(h, std::addressof(none));
    }
  }
  std::optional<next_type> take(bool yielded) const {
    if (!yielded) return std::nullopt;
    if constexpr (std::is_reference_v<Y>) {
      return std::ref(*handle_.promise().own_root.value);
    } else {
      return std::optional<Y>(std::in_place, std::move(*handle_.promise().own_root.value));
    }
  }
  std::optional<next_type> empty_or_throw() const {
    if (!closed_) throw_empty();
    return std::nullopt;
  }
  [[noreturn]] static void throw_empty() {
    throw RuntimeError("Generator is empty (moved from or default-constructed)");
  }
  /// return_value()'s checks; the promise's slot for the return value.
  auto* returned() const {
    if (!handle_) {
      if (!closed_) throw_empty();
      throw InvalidStateError("the generator was closed: it has no return value");
    }
    auto& slot = handle_.promise().returned;
    if (!slot) [[unlikely]] {
      throw InvalidStateError(handle_.promise().own_root.state == detail::gen::State::finished
                                  ? "the generator ended by an exception: it has no return value"
                                  : "the generator has not returned yet");
    }
    return std::addressof(*slot);
  }
  void destroy() noexcept {
    if (!handle_) return;
    assert(handle_.promise().own_root.state != detail::gen::State::running &&
           "a Generator destroyed from its own body");
    detail::gen::destroy_chain<Y, S>(handle_.promise());
  }

  Handle handle_;
  bool closed_ = false;  ///< close()d (or closed by throw_()): empty, not moved-from
};

/// The iterator of Generator: `*it` is the object the generator yielded (valid until the next
/// increment; it may be moved from). Compares equal to std::default_sentinel once finished.
template <class Y, class S, class R>
class Generator<Y, S, R>::iterator {
 public:
  using value_type = Generator::value_type;
  using difference_type = std::ptrdiff_t;

  iterator() noexcept = default;
  reference operator*() const noexcept { return *h_.promise().own_root.value; }
  /// Throws: what the generator body throws; ValueError (called from its own body).
  iterator& operator++() {
    if (!step(h_)) h_ = nullptr;
    return *this;
  }
  void operator++(int) { ++*this; }
  friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return !it.h_; }

 private:
  friend class Generator;
  explicit iterator(Handle h) noexcept : h_(h) {}
  Handle h_;
};

}  // namespace asyncio

/// A Generator is a (move-only, single-pass) view: `std::move(gen) | std::views::take(3)`.
template <class Y, class S, class R>
inline constexpr bool std::ranges::enable_view<asyncio::Generator<Y, S, R>> = true;

namespace asyncio {

// ---- AsyncGenerator<Y, S> ---------------------------------------------------------------------
// Engine: detail/async_generator.hpp. Guide: docs/howto/generators.md ("Async generators").

/// An asynchronous generator: a lazily started coroutine that may both `co_await` and
/// `co_yield` (Python's `async def` with `yield`, PEP 525), and, when S is not void, receives
/// values with `S x = co_yield y;` (what asend() delivers; S{} for next()).
///
///     asyncio::AsyncGenerator<int> ticker(double delay, int to) {
///       for (int i = 0; i < to; ++i) { co_yield i; co_await asyncio::sleep(delay); }
///     }
///     auto ticks = ticker(1, 2);
///     while (std::optional<int> i = co_await ticks.next()) use(*i);   // async for i in ...
///
/// The body runs inside the task that awaits next() (no task of its own): what it awaits parks
/// that task, and cancelling that task raises CancelledError at the body's await, unwinds the
/// body and then propagates out of next(). Y is a non-const object type (move-only is fine);
/// `co_yield rvalue` is moved once into next()'s optional, `co_yield lvalue` is copied once.
/// S is void (no asend()) or a default-constructible, movable object type (S{} is Python's
/// None). There is no return value: Python forbids `return value` in an async generator.
///
/// Move-only. Destroying one that has not finished destroys its frame: the destructors of
/// everything alive at its `co_yield` run, but catch blocks do not and nothing can be awaited.
/// Destroying one while a task is inside its body (another task's next(), asend(), athrow() or
/// aclose() parked at an await there) waits for that step: the step ends as it would have
/// (next() returns its value), then the frame is destroyed.
/// For a clean-up that catches or awaits, `co_await gen.aclose()` first; one left unfinished
/// when the loop shuts down (asyncio::run, Runner::close, loop.shutdown_asyncgens()) is
/// aclose()d there. Nothing runs before the first next().
/// Python: async generator (types.AsyncGeneratorType)
template <class Y, class S = void>
class [[nodiscard]] AsyncGenerator {
  static_assert(std::is_object_v<Y> && !std::is_array_v<Y> && !std::is_const_v<Y> &&
                    !std::is_volatile_v<Y>,
                "AsyncGenerator<Y>: Y must be a non-const object type");
  static_assert(std::is_void_v<S> || (std::is_object_v<S> && !std::is_const_v<S> &&
                                      std::default_initializable<S> && std::move_constructible<S>),
                "AsyncGenerator<Y, S>: S must be void or a default-constructible, movable object "
                "type (S{} stands for Python's None)");
  using Handle = detail::agen::Handle<Y, S>;

 public:
  using promise_type = detail::agen::Promise<Y, S>;
  using value_type = Y;
  /// asend()'s parameter (an uninhabited type when S is void).
  using send_type = std::conditional_t<std::is_void_v<S>, detail::gen::NoSend, S>;

  /// An empty generator, like a moved-from one: next() throws RuntimeError.
  AsyncGenerator() noexcept = default;
  AsyncGenerator(AsyncGenerator&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  AsyncGenerator& operator=(AsyncGenerator&& other) noexcept {
    if (this != &other) {
      destroy();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }
  ~AsyncGenerator() { destroy(); }

  /// Runs the generator, inside the awaiting task, to its next `co_yield` and returns the
  /// value; empty once it has finished, on that await and every later one. With a non-void S,
  /// the `co_yield` where it was suspended receives S{}.
  /// Cancellation: while the body awaits, cancelling the awaiting task raises CancelledError
  ///   there; the body unwinds (its clean-up runs) and the error propagates from here; the
  ///   generator is then finished. A value already yielded is never lost: there is no
  ///   suspension point between the `co_yield` and the return of next().
  /// Throws: what the body throws (once; the generator is then finished), CancelledError,
  ///   RuntimeError (moved-from; another step is still running the body: "anext():
  ///   asynchronous generator is already running"; or this awaiter was awaited before: each
  ///   step's awaiter, here and below, is good for one co_await, as Python's awaitables are).
  /// Python: await anext(agen), agen.__anext__(), agen.asend(None)
  [[nodiscard]] detail::agen::NextAwaiter<Y, S> next() noexcept { return {h_}; }

  /// next() that delivers `value` as the result of the `co_yield` where the generator is
  /// suspended: returns the next yielded value, empty once finished.
  /// Cancellation: as next().
  /// Throws: RuntimeError if the generator has not started (start it with next(); Python
  ///   raises TypeError for a value other than None), and as next() (also its "anext(): ..."
  ///   message while another step runs, as Python words it).
  /// Python: await agen.asend(value)
  [[nodiscard]] detail::agen::ASendAwaiter<Y, S> asend(send_type value)
  requires(!std::is_void_v<S>)
  {
    return {h_, std::move(value)};
  }

  /// Raises `e` inside the generator at the `co_yield` where it is suspended. If the body
  /// catches it and yields again, returns that value; if it returns, returns empty; otherwise
  /// `e` (or whatever escapes) propagates from here and the generator is finished. On a
  /// generator that has not started, `e` is raised at once and the generator is finished
  /// without running any of its body; on a finished one, the result is empty (both as in
  /// Python 3.12).
  /// Cancellation: as next() (the body runs inside the awaiting task).
  /// Throws: `e` or what the body throws, CancelledError, ValueError (null `e`), RuntimeError
  ///   (moved-from, or another step is running the body: "athrow(): asynchronous generator
  ///   is already running").
  /// Python: await agen.athrow(e)
  [[nodiscard]] detail::agen::AThrowAwaiter<Y, S> athrow(std::exception_ptr e) noexcept {
    return {h_, std::move(e)};
  }
  /// athrow(std::make_exception_ptr(e)): `co_await gen.athrow(asyncio::ValueError("bad"))`.
  template <detail::gen::NotExceptionPtr E>
  [[nodiscard]] detail::agen::AThrowAwaiter<Y, S> athrow(E&& e) {
    return {h_, std::make_exception_ptr(std::forward<E>(e))};
  }

  /// Closes the generator: if it is suspended at a `co_yield`, that `co_yield` throws
  /// GeneratorExit, so its catch blocks and destructors run, and it may co_await while it
  /// unwinds; GeneratorExit itself is swallowed here. A no-op on a generator that is finished,
  /// already closed or empty; one never started is just marked finished. Later next() is empty.
  /// Cancellation: if the body's clean-up awaits and the task is cancelled there, the
  ///   CancelledError propagates from here and the generator is finished.
  /// Throws: what the clean-up throws, RuntimeError ("async generator ignored GeneratorExit":
  ///   the body yielded again; it stays suspended until destroyed), RuntimeError ("aclose():
  ///   asynchronous generator is already running": another task's step is parked at an await
  ///   in the body, or the body closes itself; the generator is left alone).
  /// Python: await agen.aclose()
  [[nodiscard]] detail::agen::ACloseAwaiter<Y, S> aclose() noexcept { return {h_}; }

 private:
  friend promise_type;
  explicit AsyncGenerator(Handle h) noexcept : h_(h) {}
  void destroy() noexcept {
    if (h_) detail::agen::release(std::exchange(h_, nullptr));
  }

  Handle h_;
};

/// `async for v in gen: fn(v)`: awaits each value of `gen` and calls `fn(std::move(value))`.
/// `fn` may return void, bool (false = `break`), Coro<void> or Coro<bool> (awaited).
/// When the loop ends (exhausted, `break`, or an exception from `fn` or `gen`), the generator
/// is aclose()d, so its clean-up runs before this returns (Python's `async with aclosing(gen)`
/// around the loop); an exception from that clean-up replaces the one that ended the loop.
/// Takes `gen` by value: pass `ticker(1, 2)` or `std::move(gen)`.
/// Cancellation: as next() and aclose().   Python: async for (+ contextlib.aclosing)
template <class Y, class S, detail::agen::LoopBody<Y> F>
Coro<void> async_for(AsyncGenerator<Y, S> gen, F fn) {
  using R = std::invoke_result_t<F&, Y&&>;
  std::exception_ptr err;
  try {
    while (std::optional<Y> v = co_await gen.next()) {
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn, std::move(*v));
      } else if constexpr (std::is_same_v<R, bool>) {
        if (!std::invoke(fn, std::move(*v))) break;
      } else if constexpr (std::is_same_v<R, Coro<void>>) {
        co_await std::invoke(fn, std::move(*v));
      } else {
        if (!co_await std::invoke(fn, std::move(*v))) break;
      }
    }
  } catch (...) {
    err = std::current_exception();
  }
  co_await gen.aclose();
  if (err) std::rethrow_exception(err);
}

namespace detail::agen {
template <class Y, class S>
AsyncGenerator<Y, S> Promise<Y, S>::get_return_object() noexcept {
  return AsyncGenerator<Y, S>(Handle<Y, S>::from_promise(*this));
}
}  // namespace detail::agen

}  // namespace asyncio
