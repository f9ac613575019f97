// A Future holds a value that is set later; done() tells whether it has been set.
// Article 001 §3:
//
//   my_future = Future()
//   print(f"Is my_future done? {my_future.done()}")
//   my_future.set_result(42)
//   print(f"Is my_future done? {my_future.done()}")
//   print(f"What is the result of my_future? {my_future}")
//
// A default-constructed asyncio::Future binds to the running loop, so this runs inside main().
// Python prints the future's repr, <Future finished result=42>; here we print result().
#include "seeds.hpp"

namespace {

asyncio::Coro<void> async_main() {
  asyncio::Future<int> my_future;

  seeds::print("Is my_future done? ", my_future.done());

  my_future.set_result(42);

  seeds::print("Is my_future done? ", my_future.done());
  seeds::print("What is the result of my_future? ", my_future.result());
  co_return;
}

const seeds::Register reg{{
    .name = "future_basics",
    .title = "a Future is not done until set_result(); then result() holds the value",
    .article = "001 asyncio 파헤치기 ② §3",
    .order = 260,
    .main = &async_main,
}};

}  // namespace
