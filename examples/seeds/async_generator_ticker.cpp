// An async generator may await between its yields; the consumer awaits each next value.
// Not in the articles (which stop at synchronous generators); this is PEP 525's ticker:
//
//   async def ticker(delay, to):
//       """Yield numbers from 0 to *to* every *delay* seconds."""
//       for i in range(to):
//           yield i
//           await asyncio.sleep(delay)
//
//   async def main():
//       async for i in ticker(1, 2):
//           print(f"tick {i}")
//       print("ticker finished")
//
// C++ has no `async for`: loop on `co_await gen.next()`, which is empty at the end.
#include <optional>

#include <asyncio/generators.hpp>

#include "seeds.hpp"

namespace {

asyncio::AsyncGenerator<int> ticker(double delay, int to) {
  for (int i = 0; i < to; ++i) {
    co_yield i;
    co_await asyncio::sleep(delay);
  }
}

asyncio::Coro<void> async_main() {
  asyncio::AsyncGenerator<int> ticks = ticker(1, 2);
  while (std::optional<int> i = co_await ticks.next()) {
    seeds::print("tick ", *i);
  }
  seeds::print("ticker finished");
}

const seeds::Register reg{{
    .name = "async_generator_ticker",
    .title = "AsyncGenerator: a ticker that yields once a second",
    .article = "(PEP 525, after article 003's generators)",
    .order = 330,
    .main = &async_main,
}};

}  // namespace
