// wait_for() gives a task 1 s; the task needs 2 s, so wait_for cancels it, waits for the
// cancellation to finish, and throws TimeoutError. Article 001 §2-5:
//
//   async def main():
//       delay_task = asyncio.create_task(delay(2))
//       try:
//           result = await asyncio.wait_for(delay_task, timeout=1)
//           print(result)
//       except asyncio.exceptions.TimeoutError:
//           print("Got a timeout!")
//           print(f"Was the task cancelled? {delay_task.cancelled()}")
#include <chrono>

#include "seeds.hpp"
#include "util/delay_functions.hpp"

namespace {

using namespace std::chrono_literals;
using util::delay;

asyncio::Coro<void> async_main() {
  asyncio::Task<int> delay_task = asyncio::create_task(delay(2));
  try {
    int result = co_await asyncio::wait_for(delay_task, 1s);
    seeds::print(result);
  } catch (const asyncio::TimeoutError&) {
    seeds::print("Got a timeout!");
    seeds::print("Was the task cancelled? ", delay_task.cancelled());
  }
}

const seeds::Register reg{{
    .name = "wait_for_timeout",
    .title = "wait_for: a 2 s task with a 1 s time-out is cancelled, TimeoutError",
    .article = "001 asyncio 파헤치기 ② §2-5",
    .order = 240,
    .main = &async_main,
}};

}  // namespace
