// Two tasks sleep at the same time, so both are done after 2 s, not 3 s.
// Article 000 §2 (article 002 has the same code without the "method started" line):
//
//   async def say_after(delay, what):
//       print(f"delay {delay}s method started at at {time.strftime('%X')}")
//       await asyncio.sleep(delay)
//       print(what)
//
//   async def main():
//       task1 = asyncio.create_task(say_after(1, 'hello'))
//       task2 = asyncio.create_task(say_after(2, 'world'))
//       print(f"started at {time.strftime('%X')}")
//       await task1
//       await task2
//       print(f"finished at {time.strftime('%X')}")
//
// The article's output shows the order: "started at" comes first, because create_task only
// schedules the coroutine; it starts when main() first suspends (at `await task1`).
// (The article's doubled "at at" is a typo and is not copied.)
#include <string>

#include "seeds.hpp"

namespace {

asyncio::Coro<void> say_after(int delay, std::string what) {
  seeds::print("delay ", delay, "s method started at ", seeds::now());
  co_await asyncio::sleep(delay);
  seeds::print(what);
}

asyncio::Coro<void> async_main() {
  asyncio::Task<void> task1 = asyncio::create_task(say_after(1, "hello"));
  asyncio::Task<void> task2 = asyncio::create_task(say_after(2, "world"));

  seeds::print("started at ", seeds::now());

  // Wait until both tasks are completed (should take around 2 seconds.)
  co_await task1;
  co_await task2;

  seeds::print("finished at ", seeds::now());
}

const seeds::Register reg{{
    .name = "say_after_tasks",
    .title = "say_after as two tasks: both done after 2 s",
    .article = "000 코루틴과 태스크 §2, 002 파이썬 코루틴과 태스크",
    .order = 110,
    .main = &async_main,
}};

}  // namespace
