// The event loop by hand: make a loop, run one coroutine on it to completion, close it.
// Article 003 ("Event Loop"):
//
//   async def coroutine():
//       print('coroutine')
//       await asyncio.sleep(0.1)
//       return 1
//
//   loop = asyncio.get_event_loop()
//   loop.run_until_complete(coroutine())
//   loop.close()
//
// get_event_loop() is deprecated outside a running loop; new_event_loop() is what it does
// here. The result of run_until_complete is printed (the article drops it); that line comes
// after the loop stopped, so it has no loop time ("[no loop]" in the tour).
// A top-level program: it passes the runner's options on (virtual time in the test).
#include <memory>

#include "seeds.hpp"

namespace {

asyncio::Coro<int> coroutine() {
  seeds::print("coroutine");
  co_await asyncio::sleep(0.1);
  co_return 1;
}

void program(const asyncio::RunOptions& options) {
  std::unique_ptr<asyncio::EventLoop> loop = asyncio::new_event_loop(options);
  // Runs until the coroutine is done (more precisely: until the task wrapping it is done).
  int result = loop->run_until_complete(coroutine());
  loop->close();
  seeds::print("run_until_complete returned ", result);
}

const seeds::Register reg{{
    .name = "run_until_complete",
    .title = "an explicit loop: new_event_loop(), run_until_complete(), close()",
    .article = "003 파이선에서 asyncio로 비동기 처리하기 (Event Loop)",
    .order = 340,
    .program = &program,
}};

}  // namespace
