// Poll task.done() once a second and cancel a 10 s task after 5 s. cancel() only requests the
// cancellation: CancelledError is thrown into the task at its suspension point (its sleep), so
// the loop sees one more "not finished" before done() turns true; awaiting the cancelled task
// then rethrows CancelledError (at +6 s).
// Article 001 §2-4:
//
//   async def main():
//       long_task = asyncio.create_task(delay(10))
//
//       seconds_elapsed = 0
//
//       while not long_task.done():
//           print("Task not finished, checking again in a second.")
//           await asyncio.sleep(1)
//           seconds_elapsed += 1
//           if seconds_elapsed == 5:
//               long_task.cancel()
//
//       try:
//           await long_task
//       except CancelledError:
//           print("Our task was cancelled.")
//
// CancelledError does not derive from std::exception (Python: BaseException), so a
// `catch (const std::exception&)` never swallows it; catch it by name.
#include "seeds.hpp"
#include "util/delay_functions.hpp"

namespace {

using util::delay;

asyncio::Coro<void> async_main() {
  asyncio::Task<int> long_task = asyncio::create_task(delay(10));

  int seconds_elapsed = 0;

  while (!long_task.done()) {
    seeds::print("Task not finished, checking again in a second.");
    co_await asyncio::sleep(1);
    seconds_elapsed += 1;
    if (seconds_elapsed == 5) {
      long_task.cancel();
    }
  }

  try {
    co_await long_task;
  } catch (const asyncio::CancelledError&) {
    seeds::print("Our task was cancelled.");
  }
}

const seeds::Register reg{{
    .name = "cancel_long_task",
    .title = "poll task.done(), cancel a 10 s task after 5 s, catch CancelledError",
    .article = "001 asyncio 파헤치기 ② §2-4",
    .order = 230,
    .main = &async_main,
}};

}  // namespace
