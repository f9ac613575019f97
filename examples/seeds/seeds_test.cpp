// Every seed example under virtual time: the exact lines the article prints, in order, each at
// the exact loop time at which it must appear (sleeps return at once, loop.time() advances
// exactly). Every seed must be linked in: a missing one fails.
#include "seeds.hpp"

#include <cmath>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace {

struct Line {
  double t;  // seconds since the seed started; seeds::no_loop if printed outside a loop
  std::string text;
};

struct Expected {
  const char* name;
  std::vector<Line> lines;
};

void PrintTo(const Expected& expected, std::ostream* out) {
  *out << expected.name;
}

using seeds::no_loop;
const std::string not_finished = "Task not finished, checking again in a second.";

// What each article prints (with "+N.NNs" for its wall-clock times), and when.
const std::vector<Expected>& expectations() {
  static const std::vector<Expected> all = {
      {"say_after_sequential",
       {{0, "started at +0.00s"}, {1, "hello"}, {3, "world"}, {3, "finished at +3.00s"}}},
      {"say_after_tasks",
       {{0, "started at +0.00s"},
        {0, "delay 1s method started at +0.00s"},
        {0, "delay 2s method started at +0.00s"},
        {1, "hello"},
        {2, "world"},
        {2, "finished at +2.00s"}}},
      {"taskgroup_say_after",
       {{0, "started at +0.00s"}, {1, "hello"}, {2, "world"}, {2, "finished at +2.00s"}}},
      {"coroutine_add_one",
       {{no_loop, "Function result is 2 and the type is int"},
        {no_loop, "Coroutine result is a coroutine object and the type is asyncio::Coro<int>"},
        {no_loop, "2"}}},
      {"delay_three_tasks",
       {{0, "sleeping for 3 second(s)"},
        {0, "sleeping for 3 second(s)"},
        {0, "sleeping for 3 second(s)"},
        {3, "finished sleeping for 3 second(s)"},
        {3, "finished sleeping for 3 second(s)"},
        {3, "finished sleeping for 3 second(s)"}}},
      {"hello_every_second",
       {{0, "sleeping for 3 second(s)"},
        {0, "sleeping for 3 second(s)"},
        {1, "I'm running other code while I'm waiting!"},
        {2, "I'm running other code while I'm waiting!"},
        {3, "finished sleeping for 3 second(s)"},
        {3, "finished sleeping for 3 second(s)"}}},
      {"cancel_long_task",
       {{0, not_finished},
        {0, "sleeping for 10 second(s)"},
        {1, not_finished},
        {2, not_finished},
        {3, not_finished},
        {4, not_finished},
        {5, not_finished},  // cancel() was just requested: the task is not done yet
        {6, "Our task was cancelled."}}},
      {"wait_for_timeout",
       {{0, "sleeping for 2 second(s)"},
        {1, "Got a timeout!"},
        {1, "Was the task cancelled? True"}}},
      {"shield_timeout",
       {{0, "sleeping for 2 second(s)"},
        {1, "Task took longer than one second, it will finish soon!"},
        {1, "Was the task cancelled? False"},
        {2, "finished sleeping for 2 second(s)"},
        {2, "2"}}},
      {"future_basics",
       {{0, "Is my_future done? False"},
        {0, "Is my_future done? True"},
        {0, "What is the result of my_future? 42"}}},
      {"future_make_request",
       {{0, "Is the future done? False"}, {1, "Is the future done? True"}, {1, "42"}}},
      {"generator_range",
       {{0, "generator object created; nothing ran yet"},
        {0, "1"},
        {0, "2"},
        {0, "3"},
        {0, "4"},
        {0, "5"}}},
      {"generator_send", {{0, "callee 1"}, {0, "i = 1"}, {0, "callee 2: 10"}, {0, "i = 2"}}},
      {"yield_from", {{0, "1"}, {0, "2"}, {0, "3"}}},
      {"async_generator_ticker", {{0, "tick 0"}, {1, "tick 1"}, {2, "ticker finished"}}},
      {"run_until_complete", {{0, "coroutine"}, {no_loop, "run_until_complete returned 1"}}},
      {"gather_clients",
       {{0, "클라이언트 1 요청 처리 중"},
        {0, "클라이언트 2 요청 처리 중"},
        {1, "클라이언트 2의 I/O 작업 완료"},
        {3, "클라이언트 1의 I/O 작업 완료"}}},
  };
  return all;
}

std::vector<Line> run_virtual(const seeds::Seed& seed) {
  std::vector<Line> lines;
  seeds::Sink previous = seeds::set_sink([&lines](double t, std::string_view text) {
    lines.push_back({t, std::string{text}});
  });
  seeds::run(seed, {.virtual_time = true});
  seeds::set_sink(std::move(previous));
  return lines;
}

std::string transcript(const std::vector<Line>& lines) {
  std::ostringstream out;
  for (const Line& line : lines) {
    out << '[' << seeds::format_time(line.t) << "] " << line.text << '\n';
  }
  return out.str();
}

double duration(const std::vector<Line>& lines) {
  double last = 0;
  for (const Line& line : lines) {
    last = std::isnan(line.t) ? last : line.t;
  }
  return last;
}

class SeedOutput : public testing::TestWithParam<Expected> {};

TEST_P(SeedOutput, PrintsTheArticlesLinesAtTheirLoopTimes) {
  const Expected& expected = GetParam();
  const seeds::Seed* seed = seeds::find(expected.name);
  ASSERT_NE(seed, nullptr) << expected.name << " is not linked in (examples/CMakeLists.txt)";
  std::vector<Line> actual = run_virtual(*seed);

  EXPECT_EQ(transcript(actual), transcript(expected.lines));
  ASSERT_EQ(actual.size(), expected.lines.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected.lines[i].t)) {
      EXPECT_TRUE(std::isnan(actual[i].t)) << "line " << i << " should be printed outside a loop";
    } else {
      EXPECT_NEAR(actual[i].t, expected.lines[i].t, 1e-6) << "line " << i << ": " << actual[i].text;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, SeedOutput, testing::ValuesIn(expectations()),
                         [](const testing::TestParamInfo<Expected>& info) {
                           return std::string{info.param.name};
                         });

TEST(Seeds, EveryLinkedSeedHasAnExpectation) {
  for (const seeds::Seed& seed : seeds::registry()) {
    bool found = false;
    for (const Expected& expected : expectations()) {
      found = found || std::string_view{expected.name} == seed.name;
    }
    EXPECT_TRUE(found) << seed.name << " has no expected output in seeds_test.cpp";
  }
}

TEST(Seeds, RegistryIsInTourOrderAndEachSeedHasOneEntryPoint) {
  const auto& registry = seeds::registry();
  ASSERT_FALSE(registry.empty());
  for (std::size_t i = 0; i < registry.size(); ++i) {
    EXPECT_NE(registry[i].main == nullptr, registry[i].program == nullptr) << registry[i].name;
    if (i > 0) {
      EXPECT_LT(registry[i - 1].order, registry[i].order)
          << registry[i - 1].name << " and " << registry[i].name << " share an order";
    }
  }
}

TEST(Seeds, FullTourFitsInThirtySecondsOfRealTime) {
  // The tour runs every seed in real time; its sleeps add up to the last loop times.
  double total = std::accumulate(
      expectations().begin(), expectations().end(), 0.0,
      [](double sum, const Expected& expected) { return sum + duration(expected.lines); });
  EXPECT_LT(total, 29.0) << "asyncio-tour would take about " << total << " s";
}

TEST(Seeds, RunningASeedTwiceRestartsItsClock) {
  const seeds::Seed* seed = seeds::find("say_after_tasks");
  ASSERT_NE(seed, nullptr);
  EXPECT_EQ(transcript(run_virtual(*seed)), transcript(run_virtual(*seed)));
}

TEST(Seeds, PrintOutsideALoopHasNoLoopTime) {
  std::vector<Line> lines;
  seeds::Sink previous = seeds::set_sink([&lines](double t, std::string_view text) {
    lines.push_back({t, std::string{text}});
  });
  seeds::print("x = ", 1, ", ok = ", true);
  seeds::set_sink(std::move(previous));
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0].text, "x = 1, ok = True");
  EXPECT_TRUE(std::isnan(lines[0].t));
}

}  // namespace
