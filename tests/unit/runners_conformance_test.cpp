// CPython 3.12 conformance: run() and Runner.
//
// These translate tests of Lib/test/test_asyncio/test_runners.py that no other test of ours
// covered (docs/conformance.md lists every one and where it went); each names the Python test
// it follows. Where a translation shows that we differ from CPython, the test stays, skipped with
// "differs from CPython: ...", and docs/conformance.md lists the difference.
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::AsyncGenerator;
using asyncio::CancelledError;
using asyncio::Coro;
using asyncio_test::RecordingHandler;
using asyncio_test::SetOnDestroy;

struct FancyExit : std::runtime_error {
  FancyExit() : std::runtime_error("FancyExit") {}
};
struct ZeroDivision : std::runtime_error {
  ZeroDivision() : std::runtime_error("division by zero") {}
};

/// Yields 1 once a second for ever; *unwound is set when its frame's locals are destroyed.
AsyncGenerator<int> fidget(bool* unwound) {
  SetOnDestroy guard(unwound);
  while (true) {
    co_yield 1;
    co_await asyncio::sleep(1);
  }
}

/// Iterates `spinner` until cancelled, then fails with ZeroDivision (Python: `1 / 0` in the
/// `except CancelledError`). *ended is set when this coroutine's frame goes.
Coro<void> spin(AsyncGenerator<int>* spinner, bool* ended) {
  SetOnDestroy guard(ended);
  bool cancelled = false;
  try {
    while (co_await spinner->next()) {
    }
  } catch (const CancelledError&) {
    cancelled = true;
  }
  if (cancelled) throw ZeroDivision();
}

/// main: installs a RecordingHandler (kept in *handlers), starts a task iterating `g`, fails.
Coro<void> fail_leaving_a_spinner(AsyncGenerator<int>* g, bool* ended,
                                  std::vector<RecordingHandler>* handlers) {
  handlers->emplace_back();  // installs itself in the running loop
  asyncio::create_task(spin(g, ended), "lazyboy");
  co_await asyncio::sleep(0);  // lazyboy starts iterating
  throw FancyExit();
}

// test_asyncio_run_closes_gens_after_hanging_tasks_errors: main fails while a leftover task
// iterates an async generator. run() cancels the leftover (the cancellation reaches the
// generator's await, so the generator ends), reports the leftover's own error through the
// exception handler, and throws main's error.
TEST(RunnersConformance, AsyncGeneratorsAreClosedAfterLeftoverTasksFailed) {
  bool generator_unwound = false;
  bool spin_ended = false;
  AsyncGenerator<int> spinner = fidget(&generator_unwound);
  std::vector<RecordingHandler> handlers;  // the handler installed by main, kept past run()
  EXPECT_THROW(asyncio::run(fail_leaving_a_spinner(&spinner, &spin_ended, &handlers),
                            asyncio_test::virtual_options()),
               FancyExit);
  EXPECT_TRUE(spin_ended);
  EXPECT_TRUE(generator_unwound);
  ASSERT_EQ(handlers.size(), 1U);
  ASSERT_EQ(handlers[0].size(), 1U);
  EXPECT_TRUE(asyncio_test::holds<ZeroDivision>(handlers[0].at(0).exception))
      << handlers[0].at(0).message;
}

// test_non_debug: Runner(debug=False) makes a loop without debug mode.
TEST(RunnersConformance, ARunnerWithoutDebugHasALoopWithoutDebug) {
  asyncio::Runner runner({.debug = false, .virtual_time = true});
  EXPECT_FALSE(runner.get_loop().get_debug());
}

}  // namespace
