// Three tasks that each sleep 3 s run concurrently: all three are done after 3 s, not 9 s.
// Article 001 §2-2:
//
//   async def main():
//       sleep_for_three = asyncio.create_task(delay(3))
//       sleep_again = asyncio.create_task(delay(3))
//       sleep_once_more = asyncio.create_task(delay(3))
//
//       await sleep_for_three
//       await sleep_again
//       await sleep_once_more
#include "seeds.hpp"
#include "util/delay_functions.hpp"

namespace {

using util::delay;

asyncio::Coro<void> async_main() {
  asyncio::Task<int> sleep_for_three = asyncio::create_task(delay(3));
  asyncio::Task<int> sleep_again = asyncio::create_task(delay(3));
  asyncio::Task<int> sleep_once_more = asyncio::create_task(delay(3));

  co_await sleep_for_three;
  co_await sleep_again;
  co_await sleep_once_more;
}

const seeds::Register reg{{
    .name = "delay_three_tasks",
    .title = "three concurrent delay(3) tasks: all done after 3 s",
    .article = "001 asyncio 파헤치기 ② §2-2",
    .order = 210,
    .main = &async_main,
}};

}  // namespace
