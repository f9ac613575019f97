// util/delay_functions.py from article 001 ("asyncio 파헤치기 - ② 코루틴, 태스크, 퓨처"):
// a long-running operation that says when it starts and when it ends.
//
//   async def delay(delay_seconds: int) -> int:
//       print(f"sleeping for {delay_seconds} second(s)")
//       await asyncio.sleep(delay_seconds)
//       print(f"finished sleeping for {delay_seconds} second(s)")
//       return delay_seconds
#pragma once

#include "../seeds.hpp"

namespace util {

[[nodiscard]] inline asyncio::Coro<int> delay(int delay_seconds) {
  seeds::print("sleeping for ", delay_seconds, " second(s)");
  co_await asyncio::sleep(delay_seconds);
  seeds::print("finished sleeping for ", delay_seconds, " second(s)");
  co_return delay_seconds;
}

}  // namespace util
