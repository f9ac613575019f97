// Tests for asyncio/generators.hpp: the synchronous Generator<Y, S, R>.
//
// Where a test translates a behaviour that CPython checks (Lib/test/test_generators.py: the
// PEP 255 and coroutine doctests, ExceptionTest, GeneratorThrowTest; test_yield_from.py for
// delegation), its comment quotes the Python it follows.
#include <cstdio>
#include <functional>
#include <iterator>
#include <memory>
#include <numeric>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include <asyncio/generators.hpp>

#include "asyncio_test.hpp"

// clang 14 cannot instantiate libstdc++ 12's std::ranges::view_interface, the base of every
// std view (`std::views::iota(1, 3)` alone fails to compile), so the tests that combine
// generators with std views run with g++ and with newer clangs only.
#if defined(__clang__) && __clang_major__ < 15 && defined(__GLIBCXX__)
#define GENERATORS_TEST_STD_VIEWS 0
#else
#define GENERATORS_TEST_STD_VIEWS 1
#endif

namespace {

using asyncio::elements_of;
using asyncio::Generator;

// ---- helpers -----------------------------------------------------------------------------------

using asyncio_test::Tracker;

/// Counts its copies and moves.
struct Counted {
  static inline int copies = 0;
  static inline int moves = 0;
  int value = 0;
  explicit Counted(int v) : value(v) {}
  Counted(const Counted& o) : value(o.value) { ++copies; }
  Counted(Counted&& o) noexcept : value(o.value) { ++moves; }
  Counted& operator=(const Counted&) = delete;
  Counted& operator=(Counted&&) = delete;
  ~Counted() = default;
  static void reset() { copies = moves = 0; }
};

Generator<int> count_to(int n) {
  for (int i = 1; i <= n; ++i) co_yield i;
}

Generator<int> naturals() {
  for (int i = 0;; ++i) co_yield i;
}

template <class G>
std::vector<int> drain(G&& gen) {
  std::vector<int> out;
  for (int v : gen) out.push_back(v);
  return out;
}

// ---- iteration ---------------------------------------------------------------------------------

TEST(Generator, NothingRunsBeforeTheFirstNext) {
  bool started = false;
  auto gen = [](bool* s) -> Generator<int> {
    *s = true;
    co_yield 1;
  }(&started);
  EXPECT_FALSE(started);
  EXPECT_EQ(gen.next(), 1);
  EXPECT_TRUE(started);
}

TEST(Generator, RangeForYieldsEveryValueInOrder) {
  EXPECT_EQ(drain(count_to(5)), (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(Generator, NextReturnsEachValueThenEmpty) {
  auto gen = count_to(2);
  EXPECT_EQ(gen.next(), 1);
  EXPECT_EQ(gen.next(), 2);
  EXPECT_EQ(gen.next(), std::nullopt);
}

TEST(Generator, NextAfterExhaustionIsEmptyEveryTime) {
  auto gen = count_to(1);
  EXPECT_EQ(gen.next(), 1);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(gen.next(), std::nullopt);
  EXPECT_TRUE(gen.begin() == gen.end());
}

TEST(Generator, EmptyBodyYieldsNothing) {
  // Python: def f(): return; yield   ->   list(f()) == []
  auto gen = []() -> Generator<int> { co_return; }();
  EXPECT_TRUE(gen.begin() == gen.end());
  EXPECT_EQ(gen.next(), std::nullopt);
}

TEST(Generator, RangeForContinuesAPartlyConsumedGenerator) {
  auto gen = count_to(4);
  EXPECT_EQ(gen.next(), 1);
  EXPECT_EQ(drain(gen), (std::vector<int>{2, 3, 4}));  // Python's `for` continues, too
}

TEST(Generator, BreakingOutOfRangeForLeavesTheRestForLater) {
  auto gen = count_to(5);
  for (int v : gen) {
    if (v == 2) break;
  }
  EXPECT_EQ(gen.next(), 3);
}

TEST(Generator, ModelsAnInputViewAndComposesWithStdViews) {
  static_assert(std::ranges::input_range<Generator<int>>);
  static_assert(std::ranges::view<Generator<int>>);
  static_assert(std::input_iterator<Generator<int>::iterator>);
  static_assert(!std::copy_constructible<Generator<int>>);
#if GENERATORS_TEST_STD_VIEWS
  auto evens = naturals() | std::views::filter([](int v) { return v % 2 == 0; }) |
               std::views::transform([](int v) { return v * 10; }) | std::views::take(4);
  std::vector<int> out;
  for (int v : evens) out.push_back(v);
  EXPECT_EQ(out, (std::vector<int>{0, 20, 40, 60}));
#endif
}

TEST(Generator, InfiniteGeneratorProducesOnDemand) {
  auto gen = naturals();
  EXPECT_EQ(gen.next(), 0);
  EXPECT_EQ(gen.next(), 1);
  EXPECT_EQ(*gen.begin(), 2);
}

TEST(Generator, LargeGeneratorSumsAMillionValues) {
  long long sum = 0;
  for (int v : count_to(1'000'000)) sum += v;
  EXPECT_EQ(sum, 1'000'000LL * 1'000'001LL / 2);
}

TEST(Generator, InfiniteGeneratorAbandonedDestroysItsLocals) {
  std::vector<std::string> log;
  {
    auto gen = [](std::vector<std::string>* l) -> Generator<int> {
      Tracker t(l, "body");
      for (int i = 0;; ++i) co_yield i;
    }(&log);
    int seen = 0;
    for (int v : gen) {
      if (v == 100) break;
      ++seen;
    }
    EXPECT_EQ(seen, 100);
    EXPECT_TRUE(log.empty());
  }
  EXPECT_EQ(log, (std::vector<std::string>{"~body"}));
}

TEST(Generator, MoveOnlyValuesAreMovedOut) {
  auto gen = []() -> Generator<std::unique_ptr<int>> {
    co_yield std::make_unique<int>(1);
    auto p = std::make_unique<int>(2);
    co_yield std::move(p);
  }();
  std::unique_ptr<int> a = *gen.next();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(*a, 1);
  std::vector<int> rest;
  for (auto& p : gen) rest.push_back(*std::exchange(p, nullptr));  // the iterator's object
  EXPECT_EQ(rest, (std::vector<int>{2}));
}

TEST(Generator, YieldingAnLvalueHandsOutACopy) {
  // The consumer may modify or move from what it reads; the generator's variable is safe.
  auto gen = []() -> Generator<std::string> {
    std::string s = "kept";
    co_yield s;
    co_yield s;
  }();
  std::string first = *gen.next();  // moved out of the copy
  EXPECT_EQ(first, "kept");
  EXPECT_EQ(gen.next(), "kept");
}

TEST(Generator, RvalueYieldsAreNeverCopied) {
  Counted::reset();
  auto gen = []() -> Generator<Counted> {
    co_yield Counted{1};
    co_yield Counted{2};
  }();
  int sum = 0;
  for (const Counted& c : gen) sum += c.value;  // the iterator reads the temporary in place
  EXPECT_EQ(sum, 3);
  EXPECT_EQ(Counted::copies, 0);
  EXPECT_EQ(Counted::moves, 0);
  auto gen2 = []() -> Generator<Counted> { co_yield Counted{7}; }();
  EXPECT_EQ(gen2.next()->value, 7);  // next() moves it out, once
  EXPECT_EQ(Counted::copies, 0);
  EXPECT_EQ(Counted::moves, 1);
}

TEST(Generator, ReferenceYieldsGiveTheGeneratorsOwnObjects) {
  std::vector<int> data{1, 2, 3};
  auto gen = [](std::vector<int>* d) -> Generator<int&> {
    for (int& v : *d) co_yield v;
  }(&data);
  for (int& v : gen) v *= 10;  // writes through
  EXPECT_EQ(data, (std::vector<int>{10, 20, 30}));

  auto gen2 = [](std::vector<int>* d) -> Generator<int&> { co_yield d->front(); }(&data);
  std::optional<std::reference_wrapper<int>> r = gen2.next();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(&r->get(), &data.front());
}

TEST(Generator, ConstReferenceYieldsCopyNothing) {
  Counted::reset();
  auto gen = []() -> Generator<const Counted&> {
    Counted local{5};
    co_yield local;
    co_yield Counted{6};  // a temporary lives until the generator resumes
  }();
  int sum = 0;
  for (const Counted& c : gen) sum += c.value;
  EXPECT_EQ(sum, 11);
  EXPECT_EQ(Counted::copies + Counted::moves, 0);
}

TEST(Generator, YieldedValuesConvertToY) {
  auto gen = []() -> Generator<std::string> {
    co_yield "literal";
    const char* p = "pointer";
    co_yield p;
  }();
  EXPECT_EQ(gen.next(), "literal");
  EXPECT_EQ(gen.next(), "pointer");
}

TEST(Generator, ParametersTakenByValueLiveInTheFrame) {
  auto gen = [](std::string prefix, int n) -> Generator<std::string> {
    for (int i = 0; i < n; ++i) co_yield prefix + std::to_string(i);
  }(std::string(40, 'x'), 2);  // the argument temporary is gone; the frame has its own copy
  EXPECT_EQ(gen.next(), std::string(40, 'x') + "0");
  EXPECT_EQ(gen.next(), std::string(40, 'x') + "1");
}

TEST(Generator, MoveTransfersTheSuspendedGenerator) {
  auto a = count_to(3);
  EXPECT_EQ(a.next(), 1);
  Generator<int> b = std::move(a);
  EXPECT_EQ(b.next(), 2);
  Generator<int> c;
  c = std::move(b);
  EXPECT_EQ(c.next(), 3);
  EXPECT_EQ(c.next(), std::nullopt);
}

TEST(Generator, MoveAssignmentDestroysTheOverwrittenFrame) {
  std::vector<std::string> log;
  auto make = [](std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "old");
    co_yield 1;
  };
  auto gen = make(&log);
  EXPECT_EQ(gen.next(), 1);
  gen = count_to(1);
  EXPECT_EQ(log, (std::vector<std::string>{"~old"}));
  EXPECT_EQ(gen.next(), 1);
}

// ---- send --------------------------------------------------------------------------------------

TEST(GeneratorSend, ArticleGeneratorCoroutineReadsLineForLine) {
  // def generator_coroutine():
  //     print('callee 1')
  //     x = yield 1
  //     print('callee 2: %d' % x)
  //     x = yield 2
  // task = generator_coroutine()
  // i = next(task)     # i = 1, prints "callee 1"
  // i = task.send(10)  # i = 2, prints "callee 2: 10"
  auto generator_coroutine = []() -> Generator<int, int> {
    std::printf("callee 1\n");
    int x = co_yield 1;
    std::printf("callee 2: %d\n", x);
    x = co_yield 2;
  };
  testing::internal::CaptureStdout();
  auto task = generator_coroutine();
  auto i = task.next();
  EXPECT_EQ(i, 1);
  i = task.send(10);
  EXPECT_EQ(i, 2);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "callee 1\ncallee 2: 10\n");
}

TEST(GeneratorSend, SentValueIsTheResultOfCoYield) {
  // def f(): print((yield 1)); yield 2
  // g = f(); next(g) == 1; g.send(42) prints 42, returns 2
  std::vector<int> printed;
  auto gen = [](std::vector<int>* out) -> Generator<int, int> {
    out->push_back(co_yield 1);
    co_yield 2;
  }(&printed);
  EXPECT_EQ(gen.next(), 1);
  EXPECT_EQ(gen.send(42), 2);
  EXPECT_EQ(printed, (std::vector<int>{42}));
}

TEST(GeneratorSend, AugmentedAssignmentAccumulatesSentValues) {
  // def coroutine(seq):
  //     count = 0
  //     while count < 200: count += yield; seq.append(count)
  std::vector<int> seq;
  auto c = [](std::vector<int>* s) -> Generator<std::monostate, int> {
    int count = 0;
    while (count < 200) {
      count += co_yield {};
      s->push_back(count);
    }
  }(&seq);
  c.next();
  EXPECT_TRUE(seq.empty());
  c.send(10);
  c.send(10);
  c.send(10);
  EXPECT_EQ(seq, (std::vector<int>{10, 20, 30}));
}

TEST(GeneratorSend, NextSendsADefaultConstructedValueAsPythonsNone) {
  // next(g) is g.send(None); S{} stands for None, so std::optional<T> tells them apart.
  std::vector<std::optional<int>> got;
  auto gen = [](std::vector<std::optional<int>>* out) -> Generator<int, std::optional<int>> {
    for (int i = 0; i < 3; ++i) out->push_back(co_yield i);
  }(&got);
  gen.next();
  gen.send(7);
  gen.next();
  EXPECT_EQ(gen.send(8), std::nullopt);  // finished
  EXPECT_EQ(got, (std::vector<std::optional<int>>{7, std::nullopt, 8}));
}

TEST(GeneratorSend, SendBeforeTheFirstNextThrowsRuntimeErrorAndStartsNothing) {
  // f().send("foo") -> TypeError: can't send non-None value to a just-started generator
  bool started = false;
  auto gen = [](bool* s) -> Generator<int, int> {
    *s = true;
    co_yield co_yield 1;
  }(&started);
  EXPECT_THROW(gen.send(5), asyncio::RuntimeError);
  EXPECT_FALSE(started);
  EXPECT_EQ(gen.next(), 1);  // still usable: the failed send() did not start it
  EXPECT_EQ(gen.send(9), 9);
}

TEST(GeneratorSend, SendAfterExhaustionIsEmptyEveryTime) {
  auto gen = []() -> Generator<int, int> { co_yield 1; }();
  EXPECT_EQ(gen.next(), 1);
  EXPECT_EQ(gen.send(1), std::nullopt);
  EXPECT_EQ(gen.send(2), std::nullopt);
}

TEST(GeneratorSend, SentMoveOnlyValueIsMovedIn) {
  auto gen = []() -> Generator<int, std::unique_ptr<int>> {
    std::unique_ptr<int> p = co_yield 0;
    co_yield *p;
  }();
  gen.next();
  EXPECT_EQ(gen.send(std::make_unique<int>(33)), 33);
}

// ---- errors and misuse -------------------------------------------------------------------------

TEST(GeneratorErrors, ExceptionInTheBodySurfacesAtNextThenTheGeneratorIsFinished) {
  auto gen = []() -> Generator<int> {
    co_yield 1;
    throw std::logic_error("boom");
  }();
  EXPECT_EQ(gen.next(), 1);
  EXPECT_THROW(gen.next(), std::logic_error);
  EXPECT_EQ(gen.next(), std::nullopt);  // Python: StopIteration after the exception
  EXPECT_EQ(gen.next(), std::nullopt);
}

TEST(GeneratorErrors, ExceptionInTheBodySurfacesInRangeFor) {
  auto gen = []() -> Generator<int> {
    co_yield 1;
    throw std::out_of_range("inner");
  }();
  std::vector<int> seen;
  EXPECT_THROW(
      {
        for (int v : gen) seen.push_back(v);
      },
      std::out_of_range);
  EXPECT_EQ(seen, (std::vector<int>{1}));
}

TEST(GeneratorErrors, ExceptionBeforeTheFirstYieldSurfacesAtBegin) {
  auto gen = []() -> Generator<int> {
    throw std::runtime_error("at start");
    co_return;
  }();
  EXPECT_THROW((void)gen.begin(), std::runtime_error);
  EXPECT_TRUE(gen.begin() == gen.end());
}

TEST(GeneratorErrors, ReentrantNextFromTheBodyThrowsValueError) {
  // PEP 255: def g(): i = next(me); yield i  ->  ValueError: generator already executing
  Generator<int> me;
  bool caught = false;
  me = [](Generator<int>* self, bool* c) -> Generator<int> {
    try {
      (void)self->next();
    } catch (const asyncio::ValueError& e) {
      *c = std::string(e.what()) == "generator already executing";
    }
    co_yield 1;
  }(&me, &caught);
  EXPECT_EQ(me.next(), 1);
  EXPECT_TRUE(caught);
}

TEST(GeneratorErrors, MovedFromGeneratorThrowsRuntimeErrorOnEveryUse) {
  auto a = count_to(3);
  Generator<int> b = std::move(a);
  EXPECT_THROW((void)a.next(), asyncio::RuntimeError);   // NOLINT(bugprone-use-after-move)
  EXPECT_THROW((void)a.begin(), asyncio::RuntimeError);  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW((void)a.throw_(std::logic_error("x")), asyncio::RuntimeError);
  EXPECT_THROW(
      {
        for (int v : a) (void)v;
      },
      asyncio::RuntimeError);
  EXPECT_EQ(b.next(), 1);  // the moved-to one is untouched
}

TEST(GeneratorErrors, DefaultConstructedGeneratorThrowsRuntimeError) {
  Generator<int, int> gen;
  EXPECT_THROW((void)gen.next(), asyncio::RuntimeError);
  EXPECT_THROW((void)gen.send(1), asyncio::RuntimeError);
  EXPECT_NO_THROW(gen.close());  // close() of nothing is a no-op, like a destructor
}

TEST(GeneratorErrors, ErrorsAreAsyncioErrors) {
  Generator<int> gen;
  try {
    (void)gen.next();
    FAIL() << "expected RuntimeError";
  } catch (const asyncio::Error& e) {  // catchable by the common base, with a message
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos);
  }
}

// ---- close -------------------------------------------------------------------------------------

TEST(GeneratorClose, CloseDestroysLocalsAtTheSuspensionPointInReverseOrder) {
  // def f():
  //     try: yield
  //     finally: print("exiting")      # C++: a destructor
  std::vector<std::string> log;
  auto gen = [](std::vector<std::string>* l) -> Generator<int> {
    Tracker a(l, "a");
    co_yield 1;
    Tracker b(l, "b");
    co_yield 2;
    Tracker never(l, "never");
  }(&log);
  EXPECT_EQ(gen.next(), 1);
  EXPECT_EQ(gen.next(), 2);
  gen.close();
  EXPECT_EQ(log, (std::vector<std::string>{"~b", "~a"}));
}

TEST(GeneratorClose, CloseIsIdempotentAndLaterCallsAreEmpty) {
  // g.close(); g.close()  # should be no-op now
  auto gen = count_to(3);
  EXPECT_EQ(gen.next(), 1);
  gen.close();
  EXPECT_NO_THROW(gen.close());
  EXPECT_EQ(gen.next(), std::nullopt);
  EXPECT_TRUE(gen.begin() == gen.end());
}

TEST(GeneratorClose, CloseBeforeStartingRunsNoBodyButDestroysParameters) {
  // f().close()  # close before opening
  std::vector<std::string> log;
  bool ran = false;
  auto gen = [](std::shared_ptr<Tracker> param, bool* r) -> Generator<int> {
    *r = true;
    co_yield param ? 1 : 0;
  }(std::make_shared<Tracker>(&log, "param"), &ran);
  EXPECT_TRUE(log.empty());
  gen.close();
  EXPECT_FALSE(ran);
  EXPECT_EQ(log, (std::vector<std::string>{"~param"}));
  EXPECT_EQ(gen.next(), std::nullopt);
}

TEST(GeneratorClose, CloseAfterExhaustionAndAfterAnExceptionIsANoOp) {
  auto done = count_to(1);
  drain(done);
  EXPECT_NO_THROW(done.close());
  auto failed = []() -> Generator<int> {
    throw std::logic_error("x");
    co_return;
  }();
  EXPECT_THROW((void)failed.next(), std::logic_error);
  EXPECT_NO_THROW(failed.close());
  EXPECT_EQ(failed.next(), std::nullopt);
}

TEST(GeneratorClose, CloseFromTheGeneratorsOwnBodyThrowsValueError) {
  Generator<int> gen;
  gen = [](Generator<int>* self) -> Generator<int> {
    bool refused = false;
    try {
      self->close();
    } catch (const asyncio::ValueError&) {
      refused = true;  // (C++ forbids co_yield inside a handler)
    }
    if (refused) co_yield -1;
  }(&gen);
  EXPECT_EQ(gen.next(), -1);
  EXPECT_EQ(gen.next(), std::nullopt);
}

TEST(GeneratorClose, DestroyingASuspendedGeneratorRunsItsDestructors) {
  // def f(): try: yield  finally: print("exiting")
  // g = f(); next(g); del g   -> exiting
  std::vector<std::string> log;
  {
    auto gen = [](std::vector<std::string>* l) -> Generator<int> {
      Tracker t(l, "exiting");
      co_yield 1;
    }(&log);
    EXPECT_EQ(gen.next(), 1);
  }
  EXPECT_EQ(log, (std::vector<std::string>{"~exiting"}));
}

// ---- throw_ ------------------------------------------------------------------------------------

TEST(GeneratorThrow, CaughtInsideTheGeneratorThrowReturnsTheNextYield) {
  // def f():
  //     while True:
  //         try: print((yield))
  //         except ValueError as v: print("caught ValueError (%s)" % v)
  std::vector<std::string> printed;
  auto g = [](std::vector<std::string>* out) -> Generator<int, int> {
    for (int n = 0;; ++n) {
      try {
        out->push_back(std::to_string(co_yield n));
      } catch (const asyncio::ValueError& v) {
        out->push_back(std::string("caught ValueError (") + v.what() + ")");
      }
    }
  }(&printed);
  EXPECT_EQ(g.next(), 0);
  EXPECT_EQ(g.throw_(asyncio::ValueError("xyz")), 1);
  EXPECT_EQ(g.send(1), 2);
  EXPECT_EQ(printed, (std::vector<std::string>{"caught ValueError (xyz)", "1"}));
}

TEST(GeneratorThrow, UncaughtExceptionPropagatesAndFinishesTheGenerator) {
  // throw(g, TypeError)  # terminate the generator  ->  TypeError;  g.send(2) -> StopIteration
  std::vector<std::string> log;
  auto g = [](std::vector<std::string>* l) -> Generator<int, int> {
    Tracker t(l, "frame");
    for (;;) co_yield 0;
  }(&log);
  g.next();
  EXPECT_THROW((void)g.throw_(std::invalid_argument("TypeError")), std::invalid_argument);
  EXPECT_EQ(log, (std::vector<std::string>{"~frame"}));  // unwound inside the generator
  EXPECT_EQ(g.send(2), std::nullopt);
}

TEST(GeneratorThrow, ThrowIntoAFinishedGeneratorRaisesAtTheCaller) {
  // g.throw(ValueError, 6)  # throw on closed generator  ->  ValueError: 6
  auto g = count_to(1);
  drain(g);
  EXPECT_THROW((void)g.throw_(asyncio::ValueError("6")), asyncio::ValueError);
  g.close();
  EXPECT_THROW((void)g.throw_(asyncio::ValueError("6")), asyncio::ValueError);
}

TEST(GeneratorThrow, ThrowIntoAJustStartedGeneratorRaisesAtTheCallerAndClosesIt) {
  // f().throw(ValueError, 7)  # throw on just-opened generator  ->  ValueError: 7
  bool ran = false;
  auto g = [](bool* r) -> Generator<int> {
    *r = true;
    co_yield 1;
  }(&ran);
  EXPECT_THROW((void)g.throw_(asyncio::ValueError("7")), asyncio::ValueError);
  EXPECT_FALSE(ran);
  EXPECT_EQ(g.next(), std::nullopt);
}

TEST(GeneratorThrow, GeneratorThatCatchesAndReturnsGivesEmpty) {
  // Python raises StopIteration from throw() here; C++ returns an empty optional.
  auto g = []() -> Generator<int> {
    try {
      co_yield 1;
    } catch (const std::logic_error&) {
      co_return;
    }
  }();
  g.next();
  EXPECT_EQ(g.throw_(std::logic_error("stop")), std::nullopt);
  EXPECT_EQ(g.next(), std::nullopt);
}

TEST(GeneratorThrow, ThrownExceptionCanBeKeptAndReraisedLater) {
  // ExceptionTest.test_except_throw: catch the thrown ValueError, yield twice, then `raise`.
  auto make = []() -> Generator<int> {
    std::exception_ptr saved;
    try {
      co_yield 0;
    } catch (const asyncio::ValueError&) {
      saved = std::current_exception();
    }
    co_yield 1;
    co_yield 2;
    std::rethrow_exception(saved);
  }();
  make.next();
  EXPECT_EQ(make.throw_(std::make_exception_ptr(asyncio::ValueError("v"))), 1);
  EXPECT_EQ(make.next(), 2);
  EXPECT_THROW((void)make.next(), asyncio::ValueError);
}

TEST(GeneratorThrow, NullExceptionPtrIsAValueError) {
  // g.throw("abc") -> TypeError: exceptions must be ... BaseException
  auto g = count_to(2);
  g.next();
  EXPECT_THROW((void)g.throw_(std::exception_ptr{}), asyncio::ValueError);
  EXPECT_EQ(g.next(), 2);  // unaffected
}

TEST(GeneratorThrow, AnyExceptionTypeCanBeThrownIn) {
  struct NotStd {
    int code;
  };
  auto g = []() -> Generator<int> {
    int code = 0;
    try {
      co_yield 0;
    } catch (const NotStd& e) {
      code = e.code;
    }
    co_yield code;
  }();
  g.next();
  EXPECT_EQ(g.throw_(NotStd{42}), 42);
}

// ---- delegation (yield from) -------------------------------------------------------------------

Generator<int> leaf(int from, int to) {
  for (int i = from; i < to; ++i) co_yield i;
}
Generator<int> middle() {
  co_yield 0;
  co_yield elements_of(leaf(1, 3));
  co_yield 3;
}
Generator<int> top() {
  co_yield elements_of(middle());
  co_yield elements_of(leaf(4, 6));
}

TEST(GeneratorDelegation, YieldFromThreeLevelsYieldsEverythingInOrder) {
  EXPECT_EQ(drain(top()), (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(GeneratorDelegation, NextWorksThroughDelegationToo) {
  auto g = top();
  std::vector<int> out;
  while (auto v = g.next()) out.push_back(*v);
  EXPECT_EQ(out, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(g.next(), std::nullopt);
}

TEST(GeneratorDelegation, ElementsAreNotCopiedOrMovedThroughIntermediateFrames) {
  Counted::reset();
  auto inner = []() -> Generator<Counted> {
    co_yield Counted{1};
    co_yield Counted{2};
  };
  auto mid = [](Generator<Counted> g) -> Generator<Counted> { co_yield elements_of(std::move(g)); };
  auto outer = [](Generator<Counted> g) -> Generator<Counted> {
    co_yield elements_of(std::move(g));
  };
  auto g = outer(mid(inner()));
  int sum = 0;
  for (const Counted& c : g) sum += c.value;
  EXPECT_EQ(sum, 3);
  EXPECT_EQ(Counted::copies, 0);
  EXPECT_EQ(Counted::moves, 0);
}

TEST(GeneratorDelegation, SendIsForwardedToTheInnermostGenerator) {
  // Python's `yield from` passes send() through to the subgenerator.
  std::vector<int> inner_got;
  std::vector<int> outer_got;
  auto inner = [](std::vector<int>* got) -> Generator<int, int> {
    got->push_back(co_yield 10);
    got->push_back(co_yield 11);
  };
  auto outer = [](Generator<int, int> in, std::vector<int>* got) -> Generator<int, int> {
    co_yield elements_of(std::move(in));
    got->push_back(co_yield 20);
  };
  auto g = outer(inner(&inner_got), &outer_got);
  EXPECT_EQ(g.next(), 10);
  EXPECT_EQ(g.send(1), 11);
  EXPECT_EQ(g.send(2), 20);
  EXPECT_EQ(g.send(3), std::nullopt);
  EXPECT_EQ(inner_got, (std::vector<int>{1, 2}));
  EXPECT_EQ(outer_got, (std::vector<int>{3}));
}

TEST(GeneratorDelegation, ThrowIsForwardedToTheInnermostGenerator) {
  auto inner = []() -> Generator<int> {
    bool caught = false;
    try {
      co_yield 1;
    } catch (const asyncio::ValueError&) {
      caught = true;  // handled inside: the outer never sees it
    }
    if (caught) co_yield 100;
  };
  auto outer = [](Generator<int> in) -> Generator<int> {
    co_yield elements_of(std::move(in));
    co_yield 2;
  };
  auto g = outer(inner());
  EXPECT_EQ(g.next(), 1);
  EXPECT_EQ(g.throw_(asyncio::ValueError("in")), 100);
  EXPECT_EQ(g.next(), 2);
}

TEST(GeneratorDelegation, InnerExceptionSurfacesAtTheOuterCallerThroughThreeLevels) {
  std::vector<std::string> log;
  auto inner = [](std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "inner");
    co_yield 1;
    throw std::logic_error("from inner");
  };
  auto mid = [](Generator<int> in, std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "mid");
    co_yield elements_of(std::move(in));
    co_yield 99;  // never reached
  };
  auto outer = [](Generator<int> in, std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "outer");
    co_yield elements_of(std::move(in));
  };
  auto g = outer(mid(inner(&log), &log), &log);
  EXPECT_EQ(g.next(), 1);
  try {
    (void)g.next();
    FAIL() << "expected the inner exception";
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "from inner");
  }
  EXPECT_EQ(log, (std::vector<std::string>{"~inner", "~mid", "~outer"}));
  EXPECT_EQ(g.next(), std::nullopt);
}

TEST(GeneratorDelegation, AnIntermediateGeneratorCanCatchTheInnerException) {
  auto inner = []() -> Generator<int> {
    co_yield 1;
    throw std::logic_error("inner failed");
  };
  auto mid = [](Generator<int> in) -> Generator<int> {
    bool recovered = false;
    try {
      co_yield elements_of(std::move(in));
    } catch (const std::logic_error&) {
      recovered = true;
    }
    if (recovered) co_yield -1;
    co_yield 2;
  };
  EXPECT_EQ(drain(mid(inner())), (std::vector<int>{1, -1, 2}));
}

TEST(GeneratorDelegation, AbandoningTheOuterDestroysEveryFrameInnermostFirst) {
  std::vector<std::string> log;
  auto inner = [](std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "inner");
    for (int i = 0;; ++i) co_yield i;
  };
  auto mid = [](Generator<int> in, std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "mid");
    co_yield elements_of(std::move(in));
  };
  auto outer = [](Generator<int> in, std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "outer");
    co_yield elements_of(std::move(in));
  };
  {
    auto g = outer(mid(inner(&log), &log), &log);
    for (int v : g) {
      if (v == 10) break;
    }
    EXPECT_TRUE(log.empty());
  }
  EXPECT_EQ(log, (std::vector<std::string>{"~inner", "~mid", "~outer"}));
}

TEST(GeneratorDelegation, CloseDuringDelegationDestroysEveryFrame) {
  std::vector<std::string> log;
  auto inner = [](std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "inner");
    co_yield 1;
    co_yield 2;
  };
  auto outer = [](Generator<int> in, std::vector<std::string>* l) -> Generator<int> {
    Tracker t(l, "outer");
    co_yield elements_of(std::move(in));
  };
  auto g = outer(inner(&log), &log);
  EXPECT_EQ(g.next(), 1);
  g.close();
  EXPECT_EQ(log, (std::vector<std::string>{"~inner", "~outer"}));
  EXPECT_EQ(g.next(), std::nullopt);
}

TEST(GeneratorDelegation, UnstartedInnerIsDestroyedWithTheOuterWhenNeverReached) {
  std::vector<std::string> log;
  bool inner_ran = false;
  auto inner = [](std::shared_ptr<Tracker> param, bool* ran) -> Generator<int> {
    *ran = true;
    co_yield param ? 1 : 0;
  };
  auto outer = [](Generator<int> in) -> Generator<int> {
    co_yield 0;
    co_yield elements_of(std::move(in));
  };
  {
    auto g = outer(inner(std::make_shared<Tracker>(&log, "inner param"), &inner_ran));
    EXPECT_EQ(g.next(), 0);
    EXPECT_TRUE(log.empty());
  }
  EXPECT_FALSE(inner_ran);
  EXPECT_EQ(log, (std::vector<std::string>{"~inner param"}));  // its frame was destroyed
}

TEST(GeneratorDelegation, APartlyConsumedInnerContinuesWhereItStopped) {
  // g = leaf(); next(g); yield from g   -> the rest of g
  auto g = leaf(0, 4);
  EXPECT_EQ(g.next(), 0);
  auto outer = [](Generator<int> in) -> Generator<int> {
    co_yield -1;
    co_yield elements_of(std::move(in));
  };
  EXPECT_EQ(drain(outer(std::move(g))), (std::vector<int>{-1, 1, 2, 3}));
}

TEST(GeneratorDelegation, AnInnerSuspendedInItsOwnDelegationContinuesToo) {
  auto g = top();  // 0 1 2 3 4 5, suspended inside middle() inside leaf(1, 3)
  EXPECT_EQ(g.next(), 0);
  EXPECT_EQ(g.next(), 1);
  auto outer = [](Generator<int> in) -> Generator<int> {
    co_yield elements_of(std::move(in));
    co_yield 6;
  };
  EXPECT_EQ(drain(outer(std::move(g))), (std::vector<int>{2, 3, 4, 5, 6}));
}

TEST(GeneratorDelegation, APartlyConsumedInnerReceivesNoneWhenDelegationStarts) {
  std::vector<int> got;
  auto inner = [](std::vector<int>* out) -> Generator<int, int> {
    out->push_back(co_yield 1);
    out->push_back(co_yield 2);
  };
  auto g = inner(&got);
  g.next();  // suspended at `co_yield 1`
  auto outer = [](Generator<int, int> in) -> Generator<int, int> {
    (void)(co_yield 0);
    co_yield elements_of(std::move(in));
  };
  auto o = outer(std::move(g));
  EXPECT_EQ(o.next(), 0);
  EXPECT_EQ(o.send(5), 2);  // 5 goes to outer's co_yield 0; inner resumes with S{}
  EXPECT_EQ(o.send(6), std::nullopt);
  EXPECT_EQ(got, (std::vector<int>{0, 6}));
}

TEST(GeneratorDelegation, DelegatingToFinishedOrClosedGeneratorsYieldsNothing) {
  auto finished = leaf(0, 1);
  drain(finished);
  auto closed = leaf(0, 5);
  closed.close();
  auto outer = [](Generator<int> a, Generator<int> b) -> Generator<int> {
    co_yield 1;
    co_yield elements_of(std::move(a));
    co_yield elements_of(std::move(b));
    co_yield 2;
  };
  EXPECT_EQ(drain(outer(std::move(finished), std::move(closed))), (std::vector<int>{1, 2}));
}

TEST(GeneratorDelegation, DelegatingToAnEmptyGeneratorThrowsRuntimeErrorInTheBody) {
  auto outer = []() -> Generator<int> {
    Generator<int> empty;
    bool refused = false;
    try {
      co_yield elements_of(std::move(empty));
    } catch (const asyncio::RuntimeError&) {
      refused = true;
    }
    if (refused) co_yield -1;
  };
  EXPECT_EQ(drain(outer()), (std::vector<int>{-1}));
}

TEST(GeneratorDelegation, DelegatingToItselfThrowsValueErrorAndKeepsRunning) {
  Generator<int> gen;
  gen = [](Generator<int>* self) -> Generator<int> {
    bool refused = false;
    try {
      co_yield elements_of(std::move(*self));
    } catch (const asyncio::ValueError&) {
      refused = true;  // and the generator was not taken from its owner
    }
    if (refused) co_yield -1;
    co_yield -2;
  }(&gen);
  EXPECT_EQ(drain(gen), (std::vector<int>{-1, -2}));
}

Generator<int> countdown(int n) {
  if (n == 0) co_return;
  co_yield n;
  co_yield elements_of(countdown(n - 1));
}

TEST(GeneratorDelegation, DeepRecursiveDelegationDoesNotGrowTheStack) {
  // 100'000 nested frames: every start and end of a delegation is a symmetric transfer.
  constexpr int kDepth = 100'000;
  long long sum = 0;
  int count = 0;
  for (int v : countdown(kDepth)) {
    sum += v;
    ++count;
  }
  EXPECT_EQ(count, kDepth);
  EXPECT_EQ(sum, 1LL * kDepth * (kDepth + 1) / 2);
}

TEST(GeneratorDelegation, AbandoningADeepChainDoesNotGrowTheStack) {
  // Destroying the outermost frame destroys the 100'000 frames below it one after the other,
  // not each from inside its parent's destructor.
  constexpr int kDepth = 100'000;
  auto gen = countdown(kDepth);
  int seen = 0;
  for (int v : gen) {
    if (v == 1) break;  // the innermost generator is running: every frame is alive
    ++seen;
  }
  EXPECT_EQ(seen, kDepth - 1);
  gen.close();
  EXPECT_EQ(gen.next(), std::nullopt);
}

TEST(GeneratorDelegation, AbandoningAChainDestroysEveryLevelsLocalsInnermostFirst) {
  std::vector<std::string> log;
  struct Recurse {
    static Generator<int> level(int n, std::vector<std::string>* l) {
      Tracker t(l, std::to_string(n));
      co_yield n;
      if (n > 0) co_yield elements_of(level(n - 1, l));
    }
  };
  {
    auto gen = Recurse::level(3, &log);
    for (int v : gen) {
      if (v == 0) break;
    }
  }
  EXPECT_EQ(log, (std::vector<std::string>{"~0", "~1", "~2", "~3"}));
}

Generator<int> inorder(const std::vector<int>* tree, std::size_t i) {  // heap-shaped tree
  if (i >= tree->size()) co_return;
  co_yield elements_of(inorder(tree, 2 * i + 1));
  co_yield (*tree)[i];
  co_yield elements_of(inorder(tree, 2 * i + 2));
}

TEST(GeneratorDelegation, RecursiveTreeWalk) {
  // The classic `yield from` use (test_generators' tree examples).
  const std::vector<int> tree{4, 2, 6, 1, 3, 5, 7};
  EXPECT_EQ(drain(inorder(&tree, 0)), (std::vector<int>{1, 2, 3, 4, 5, 6, 7}));
}

std::vector<int> make_vector() {
  return {7, 8, 9};
}

TEST(GeneratorDelegation, ElementsOfAnyRange) {
  auto g = []() -> Generator<long> {
    std::vector<int> v{1, 2};
    co_yield elements_of(v);              // an lvalue container (elements convert to long)
    co_yield elements_of(make_vector());  // a temporary: lives for the co_yield expression
#if GENERATORS_TEST_STD_VIEWS
    co_yield elements_of(std::views::iota(3, 5));
#else
    co_yield elements_of(std::vector<int>(1, 3));
    co_yield 4;
#endif
  }();
  std::vector<long> out;
  for (long v : g) out.push_back(v);
  EXPECT_EQ(out, (std::vector<long>{1, 2, 7, 8, 9, 3, 4}));
}

TEST(GeneratorDelegation, ElementsOfAGeneratorOfAnotherType) {
  auto g = []() -> Generator<double> { co_yield elements_of(leaf(1, 3)); }();
  std::vector<double> out;
  for (double v : g) out.push_back(v);
  EXPECT_EQ(out, (std::vector<double>{1.0, 2.0}));
}

TEST(GeneratorDelegation, ElementsOfMoveOnlyRangeElementsByReference) {
  std::vector<std::unique_ptr<int>> owned;
  owned.push_back(std::make_unique<int>(1));
  owned.push_back(std::make_unique<int>(2));
  auto g = [](std::vector<std::unique_ptr<int>>* v) -> Generator<std::unique_ptr<int>&> {
    co_yield elements_of(*v);
  }(&owned);
  for (std::unique_ptr<int>& p : g) *p += 10;
  EXPECT_EQ(*owned[0], 11);
  EXPECT_EQ(*owned[1], 12);
}

// ---- return values (co_return v; StopIteration.value; the value of yield from) ----------------

/// Python (test_yield_from.py, test_next_and_return_with_value):
///     def g(r):
///         yield
///         return r
Generator<int, void, std::string> yields_then_returns(std::string r) {
  co_yield 1;
  co_yield 2;
  co_return r;
}

TEST(GeneratorReturn, ReturnValueIsReadAfterTheGeneratorFinishes) {
  auto g = yields_then_returns("done");
  EXPECT_EQ(g.next(), 1);
  EXPECT_EQ(g.next(), 2);
  EXPECT_EQ(g.next(), std::nullopt);  // StopIteration("done")
  EXPECT_EQ(g.return_value(), "done");
  EXPECT_EQ(g.next(), std::nullopt);
  EXPECT_EQ(g.return_value(), "done");  // still there (Python: only on the first StopIteration)
  const auto& cg = g;
  EXPECT_EQ(cg.return_value(), "done");
  std::string taken = std::move(g.return_value());  // it may be moved out
  EXPECT_EQ(taken, "done");
}

TEST(GeneratorReturn, RangeForThenReturnValue) {
  auto g = yields_then_returns("end");
  std::vector<int> got;
  for (int v : g) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  EXPECT_EQ(g.return_value(), "end");
}

// test_send_and_return_with_value: the value sent in decides what is returned.
TEST(GeneratorReturn, SendAndReturnTogether) {
  auto g = []() -> Generator<int, std::string, std::string> {
    std::string x = co_yield 0;
    co_return "received " + x;
  }();
  EXPECT_EQ(g.next(), 0);
  EXPECT_EQ(g.send("spam"), std::nullopt);
  EXPECT_EQ(g.return_value(), "received spam");
}

TEST(GeneratorReturn, ReturnValueBeforeTheEndOrWithoutOneThrows) {
  auto unstarted = yields_then_returns("x");
  EXPECT_THROW((void)unstarted.return_value(), asyncio::InvalidStateError);
  auto suspended = yields_then_returns("x");
  suspended.next();
  EXPECT_THROW((void)suspended.return_value(), asyncio::InvalidStateError);
  suspended.close();  // the frame, and any value, are gone
  EXPECT_THROW((void)suspended.return_value(), asyncio::InvalidStateError);
  auto failed = []() -> Generator<int, void, int> {
    co_yield 1;
    throw std::out_of_range("boom");
  }();
  failed.next();
  EXPECT_THROW(failed.next(), std::out_of_range);
  try {
    (void)failed.return_value();
    ADD_FAILURE() << "no InvalidStateError";
  } catch (const asyncio::InvalidStateError& e) {
    EXPECT_STREQ(e.what(), "the generator ended by an exception: it has no return value");
  }
  auto moved = yields_then_returns("x");
  auto owner = std::move(moved);
  // NOLINTNEXTLINE(bugprone-use-after-move): using a moved-from generator is the point
  EXPECT_THROW((void)moved.return_value(), asyncio::RuntimeError);
}

TEST(GeneratorReturn, MoveOnlyReturnValue) {
  auto g = []() -> Generator<int, void, std::unique_ptr<int>> {
    auto box = std::make_unique<int>(7);
    co_yield 1;
    co_return box;  // implicitly moved
  }();
  EXPECT_EQ(g.next(), 1);
  EXPECT_EQ(g.next(), std::nullopt);
  std::unique_ptr<int> box = std::move(g.return_value());
  ASSERT_NE(box, nullptr);
  EXPECT_EQ(*box, 7);
}

/// Python (test_generator_return_value, reduced):
///     def g2(v):
///         yield "g2 spam"; yield "g2 more spam"
///         return v
///     def g1():
///         ret = yield from g2(1)
///         trace.append("g2 returned %r" % (ret,))
Generator<std::string, void, int> g2(int v, std::vector<std::string>* trace) {
  trace->push_back("Starting g2");
  co_yield "g2 spam";
  co_yield "g2 more spam";
  trace->push_back("Finishing g2");
  co_return v;
}
Generator<std::string> g1(std::vector<std::string>* trace) {
  trace->push_back("Starting g1");
  co_yield "g1 ham";
  for (int v : {1, 2}) {
    const int ret = co_yield elements_of(g2(v, trace));
    trace->push_back("g2 returned " + std::to_string(ret));
  }
  co_yield "g1 eggs";
  trace->push_back("Finishing g1");
}
TEST(GeneratorReturn, YieldFromEvaluatesToTheInnerReturnValue) {
  std::vector<std::string> trace;
  for (const std::string& x : g1(&trace)) trace.push_back("Yielded " + x);
  EXPECT_EQ(trace, (std::vector<std::string>{
                       "Starting g1", "Yielded g1 ham", "Starting g2", "Yielded g2 spam",
                       "Yielded g2 more spam", "Finishing g2", "g2 returned 1", "Starting g2",
                       "Yielded g2 spam", "Yielded g2 more spam", "Finishing g2", "g2 returned 2",
                       "Yielded g1 eggs", "Finishing g1"}));
}

/// The classic generator-based coroutine pair (PEP 380's averager, Fluent Python's grouper):
///     def averager():
///         total = count = 0
///         while True:
///             term = yield
///             if term is None: break
///             total += term; count += 1
///         return total / count
///     def grouper(results):
///         while True: results.append((yield from averager()))
Generator<std::monostate, std::optional<double>, double> averager() {
  double total = 0;
  int count = 0;
  for (;;) {
    std::optional<double> term = co_yield {};
    if (!term) break;
    total += *term;
    ++count;
  }
  co_return count == 0 ? 0.0 : total / count;
}
Generator<std::monostate, std::optional<double>> grouper(std::vector<double>* results) {
  for (;;) results->push_back(co_yield elements_of(averager()));
}
TEST(GeneratorReturn, SendThroughADelegationAndCollectEachReturnValue) {
  std::vector<double> results;
  auto g = grouper(&results);
  g.next();
  for (double v : {1.0, 2.0, 6.0}) g.send(v);
  g.send(std::nullopt);  // the first averager returns; the grouper starts the next
  for (double v : {10.0, 20.0}) g.send(v);
  g.send(std::nullopt);
  EXPECT_EQ(results, (std::vector<double>{3.0, 15.0}));
}

// test_catching_exception_from_subgen_and_returning: throw_() reaches the inner generator,
// which catches it and returns; the outer receives that value.
TEST(GeneratorReturn, InnerThatCatchesAThrownExceptionAndReturnsHandsItsValueOut) {
  std::vector<std::string> trace;
  auto inner = [](std::vector<std::string>* t) -> Generator<int, void, int> {
    try {
      co_yield 1;
    } catch (const asyncio::ValueError&) {
      t->emplace_back("inner caught ValueError");
    }
    co_return 2;
  };
  auto outer = [](Generator<int, void, int> in, std::vector<std::string>* t) -> Generator<int> {
    const int v = co_yield elements_of(std::move(in));
    t->push_back("inner returned " + std::to_string(v) + " to outer");
    co_yield v;
  };
  auto g = outer(inner(&trace), &trace);
  EXPECT_EQ(g.next(), 1);
  EXPECT_EQ(g.throw_(asyncio::ValueError("v")), 2);
  EXPECT_EQ(trace,
            (std::vector<std::string>{"inner caught ValueError", "inner returned 2 to outer"}));
}

TEST(GeneratorReturn, ReturnValuesPassUpAChainOfDelegations) {
  struct Sum {
    // Yields n, n-1, ..., 1 and returns their sum, each level adding its own n.
    static Generator<int, void, long> down(int n) {
      if (n == 0) co_return 0;
      co_yield n;
      const long below = co_yield elements_of(down(n - 1));
      co_return below + n;
    }
  };
  auto g = Sum::down(4);
  std::vector<int> got;
  for (int v : g) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{4, 3, 2, 1}));
  EXPECT_EQ(g.return_value(), 10);
}

TEST(GeneratorReturn, DeepRecursiveDelegationWithReturnValuesDoesNotGrowTheStack) {
  struct Depth {
    static Generator<int, void, int> down(int n) {
      if (n == 0) co_return 0;
      if (n % 1000 == 0) co_yield n;
      const int below = co_yield elements_of(down(n - 1));
      co_return below + 1;
    }
  };
  constexpr int kDepth = 100'000;
  auto g = Depth::down(kDepth);
  int yielded = 0;
  for (int v : g) {
    EXPECT_EQ(v % 1000, 0);
    ++yielded;
  }
  EXPECT_EQ(yielded, kDepth / 1000);
  EXPECT_EQ(g.return_value(), kDepth);
}

TEST(GeneratorReturn, ReturnValueIsMovedNotCopied) {
  Counted::reset();
  auto inner = []() -> Generator<int, void, Counted> {
    co_yield 0;
    co_return Counted{5};
  };
  auto outer = [](Generator<int, void, Counted> in) -> Generator<int> {
    Counted c = co_yield elements_of(std::move(in));
    co_yield c.value;
  };
  EXPECT_EQ(drain(outer(inner())), (std::vector<int>{0, 5}));
  EXPECT_EQ(Counted::copies, 0);
}

TEST(GeneratorReturn, DelegatingToAFinishedGeneratorGivesItsReturnValue) {
  auto finished = yields_then_returns("kept");
  while (finished.next()) {
  }
  auto closed = yields_then_returns("lost");
  closed.close();
  auto outer = [](Generator<int, void, std::string> a,
                  Generator<int, void, std::string> b) -> Generator<int, void, std::string> {
    std::string r = co_yield elements_of(std::move(a));  // yields nothing: it has finished
    try {
      r += co_yield elements_of(std::move(b));
    } catch (const asyncio::RuntimeError&) {
      r += " / closed: no value";
    }
    const std::vector<int> seven{7};  // (g++ 12 refuses a braced temporary in a co_yield)
    co_yield elements_of(seven);      // a range, inside a generator with a return value
    co_return r;
  };
  auto g = outer(std::move(finished), std::move(closed));
  EXPECT_EQ(drain(g), (std::vector<int>{7}));
  EXPECT_EQ(g.return_value(), "kept / closed: no value");
}

}  // namespace
