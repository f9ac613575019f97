// Awaiting a Future suspends main() until someone sets it: here a task, after 1 s.
// Article 001 §3:
//
//   def make_request() -> Future:
//       future = Future()
//       asyncio.create_task(set_future_value(future))
//       return future
//
//   async def set_future_value(future) -> None:
//       await asyncio.sleep(1)
//       future.set_result(42)
//
//   async def main():
//       future = make_request()
//       print(f'Is the future done? {future.done()}')
//       value = await future
//       print(f'Is the future done? {future.done()}')
//       print(value)
//
// Future is a copyable handle, so set_future_value takes it by value (no dangling reference).
// The task handle is dropped on purpose: the loop keeps a running task alive until it finishes
// (Python only keeps a weak reference and tells you to store it).
#include "seeds.hpp"

namespace {

asyncio::Coro<void> set_future_value(asyncio::Future<int> future) {
  co_await asyncio::sleep(1);
  future.set_result(42);
}

asyncio::Future<int> make_request() {
  asyncio::Future<int> future;
  static_cast<void>(asyncio::create_task(set_future_value(future)));  // fire and forget
  return future;
}

asyncio::Coro<void> async_main() {
  asyncio::Future<int> future = make_request();
  seeds::print("Is the future done? ", future.done());
  int value = co_await future;
  seeds::print("Is the future done? ", future.done());
  seeds::print(value);
}

const seeds::Register reg{{
    .name = "future_make_request",
    .title = "a Future set by a task after 1 s; awaiting it suspends main()",
    .article = "001 asyncio 파헤치기 ② §3",
    .order = 270,
    .main = &async_main,
}};

}  // namespace
