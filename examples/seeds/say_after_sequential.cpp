// Awaiting coroutines one after the other runs them one after the other: 1 s + 2 s = 3 s.
// Articles 000 §1 and 002 (the Python docs' first say_after example):
//
//   async def say_after(delay, what):
//       await asyncio.sleep(delay)
//       print(what)
//
//   async def main():
//       print(f"started at {time.strftime('%X')}")
//       await say_after(1, 'hello')
//       await say_after(2, 'world')
//       print(f"finished at {time.strftime('%X')}")
//
//   asyncio.run(main())
//
// Output: started at +0.00s / hello (at 1 s) / world (at 3 s) / finished at +3.00s
#include <string>

#include "seeds.hpp"

namespace {

asyncio::Coro<void> say_after(int delay, std::string what) {
  co_await asyncio::sleep(delay);
  seeds::print(what);
}

asyncio::Coro<void> async_main() {
  seeds::print("started at ", seeds::now());
  // `co_await coro` runs it to completion right here, in this task: no concurrency.
  co_await say_after(1, "hello");
  co_await say_after(2, "world");
  seeds::print("finished at ", seeds::now());
}

const seeds::Register reg{{
    .name = "say_after_sequential",
    .title = "say_after awaited in sequence: 1 s + 2 s = 3 s",
    .article = "000 코루틴과 태스크 §1, 002 파이썬 코루틴과 태스크",
    .order = 100,
    .main = &async_main,
}};

}  // namespace
