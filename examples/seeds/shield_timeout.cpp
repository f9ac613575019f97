// shield(): the time-out still fires, but it no longer cancels the task; we can tell the user
// and then wait for the result. Article 001 §2-5 describes it in prose ("TimeoutError는
// 발생하나, 해당 태스크가 취소되지는 않는다"); the code follows the book it is based on
// ("Python Concurrency with Asyncio", listing 2.10), with 2 s / 1 s instead of 10 s / 5 s:
//
//   async def main():
//       task = asyncio.create_task(delay(2))
//       try:
//           result = await asyncio.wait_for(asyncio.shield(task), 1)
//           print(result)
//       except TimeoutError:
//           print("Task took longer than one second, it will finish soon!")
//           result = await task
//           print(result)
//
// C++ forbids co_await inside a catch block, so the handler only records the time-out and
// the await follows it. One line is added: the task was not cancelled (compare wait_for_timeout).
#include <chrono>

#include "seeds.hpp"
#include "util/delay_functions.hpp"

namespace {

using namespace std::chrono_literals;
using util::delay;

asyncio::Coro<void> async_main() {
  asyncio::Task<int> task = asyncio::create_task(delay(2));
  bool timed_out = false;
  try {
    int result = co_await asyncio::wait_for(asyncio::shield(task), 1s);
    seeds::print(result);
  } catch (const asyncio::TimeoutError&) {
    seeds::print("Task took longer than one second, it will finish soon!");
    timed_out = true;
  }
  if (timed_out) {
    seeds::print("Was the task cancelled? ", task.cancelled());
    int result = co_await task;
    seeds::print(result);
  }
}

const seeds::Register reg{{
    .name = "shield_timeout",
    .title = "shield: the 1 s time-out fires but the 2 s task lives on and finishes",
    .article = "001 asyncio 파헤치기 ② §2-5 (shield)",
    .order = 250,
    .main = &async_main,
}};

}  // namespace
