// CPython 3.12 conformance: task groups.
//
// These translate tests of Lib/test/test_asyncio/test_taskgroups.py that no other test of ours
// covered (docs/conformance.md lists every one and where it went); each names the Python test
// it follows. Where a translation shows that we differ from CPython, the test stays, skipped with
// "differs from CPython: ...", and docs/conformance.md lists the difference.
//
// Python's MyBaseExc is a BaseException that is neither KeyboardInterrupt nor SystemExit: a task
// group collects it into its BaseExceptionGroup like any error. Its C++ counterpart is an
// exception type that is not a std::exception.
#include <exception>
#include <set>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "asyncio_test.hpp"

namespace {

using asyncio::Coro;
using asyncio::ExceptionGroup;
using asyncio::TaskGroup;
using asyncio_test::holds;
using asyncio_test::run_virtual;

struct MyBaseExc {};  // not a std::exception: Python's BaseException subclass
struct ZeroDivision : std::runtime_error {
  ZeroDivision() : std::runtime_error("division by zero") {}
};
struct TypeErr : std::runtime_error {
  TypeErr() : std::runtime_error("TypeError") {}
};

std::set<std::string> error_types(const ExceptionGroup& eg) {
  std::set<std::string> out;
  for (const auto& e : eg.exceptions()) {
    if (holds<MyBaseExc>(e)) {
      out.insert("MyBaseExc");
    } else if (holds<ZeroDivision>(e)) {
      out.insert("ZeroDivision");
    } else if (holds<TypeErr>(e)) {
      out.insert("TypeErr");
    } else {
      out.insert("other");
    }
  }
  return out;
}

/// Awaits `body`; the kinds of errors in the ExceptionGroup it throws ({"none"} if it throws
/// nothing, {"not a group"} if it throws something else).
std::set<std::string> group_of(Coro<void> body) {
  try {
    run_virtual(std::move(body));
  } catch (const ExceptionGroup& eg) {
    return error_types(eg);
  } catch (...) {
    return {"not a group"};
  }
  return {"none"};
}

Coro<void> crash_soon_zero_division() {
  co_await asyncio::sleep(0.1);
  throw ZeroDivision();
}

Coro<void> crash_soon_my_base_exc() {
  co_await asyncio::sleep(0.1);
  throw MyBaseExc();
}

/// Python: try: await asyncio.sleep(10) finally: raise E
template <class E>
Coro<void> sleep_then_raise() {
  try {
    co_await asyncio::sleep(10);
  } catch (...) {
  }
  throw E();
}

// test_taskgroup_20a: the body, cancelled by a failing child, raises a non-std exception: both
// end up in the group.
TEST(TaskGroupsConformance, ANonStdExceptionFromTheBodyJoinsTheChildsError) {
  auto types = group_of([]() -> Coro<void> {
    co_await asyncio::task_group([](TaskGroup& g) -> Coro<void> {
      g.create_task(crash_soon_zero_division());
      co_await sleep_then_raise<MyBaseExc>();
    });
  }());
  EXPECT_EQ(types, (std::set<std::string>{"MyBaseExc", "ZeroDivision"}));
}

// test_taskgroup_21a: a child raises a non-std exception; the body, cancelled, raises another
// error: both end up in the group.
TEST(TaskGroupsConformance, ANonStdExceptionFromAChildJoinsTheBodysError) {
  auto types = group_of([]() -> Coro<void> {
    co_await asyncio::task_group([](TaskGroup& g) -> Coro<void> {
      g.create_task(crash_soon_my_base_exc());
      co_await sleep_then_raise<TypeErr>();
    });
  }());
  EXPECT_EQ(types, (std::set<std::string>{"MyBaseExc", "TypeErr"}));
}

}  // namespace
