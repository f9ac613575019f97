// While two delay(3) tasks sleep, main() goes on with other work: it prints every second.
// Article 001 §2-3:
//
//   async def hello_every_second():
//       for i in range(2):
//           await asyncio.sleep(1)
//           print("I'm running other code while I'm waiting!")
//
//   async def main():
//       first_delay = asyncio.create_task(delay(3))
//       second_delay = asyncio.create_task(delay(3))
//       await hello_every_second()
//       await first_delay
//       await second_delay
#include "seeds.hpp"
#include "util/delay_functions.hpp"

namespace {

using util::delay;

asyncio::Coro<void> hello_every_second() {
  for (int i = 0; i < 2; ++i) {
    co_await asyncio::sleep(1);
    seeds::print("I'm running other code while I'm waiting!");
  }
}

asyncio::Coro<void> async_main() {
  asyncio::Task<int> first_delay = asyncio::create_task(delay(3));
  asyncio::Task<int> second_delay = asyncio::create_task(delay(3));
  co_await hello_every_second();
  co_await first_delay;
  co_await second_delay;
}

const seeds::Register reg{{
    .name = "hello_every_second",
    .title = "hello_every_second runs while two delay(3) tasks sleep",
    .article = "001 asyncio 파헤치기 ② §2-3",
    .order = 220,
    .main = &async_main,
}};

}  // namespace
