// Calling a coroutine function runs nothing; asyncio::run() makes a loop, runs the coroutine to
// completion as the main task, closes the loop and returns the coroutine's result.
// Article 001 §1-2:
//
//   async def coroutine_add_one(number: int) -> int:
//       return number + 1
//
//   function_result = add_one(1)
//   coroutine_result = coroutine_add_one(1)
//   print(f'Function result is {function_result} and the type is {type(function_result)}')
//   print(f'Coroutine result is {coroutine_result} and the type is {type(coroutine_result)}')
//
//   result = asyncio.run(coroutine_add_one(1))
//   print(result) # 2
//
// (Python warns that `coroutine_result` "was never awaited"; here the same object is then handed
// to run(), so nothing is wasted.) This is a top-level program (it calls asyncio::run itself), so
// it is registered as a `program`. It passes the runner's options on, so the test runs it under
// virtual time. The last line is printed after run() returned: no loop runs any more, and the tour
// shows it as "[no loop]".
#include <utility>

#include "seeds.hpp"

namespace {

asyncio::Coro<int> coroutine_add_one(int number) {
  co_return number + 1;
}

int add_one(int number) {
  return number + 1;
}

void program(const asyncio::RunOptions& options) {
  int function_result = add_one(1);
  // A Coro is lazy: this only creates the coroutine object (Python: <coroutine object ...>).
  asyncio::Coro<int> coroutine_result = coroutine_add_one(1);
  seeds::print("Function result is ", function_result, " and the type is int");
  seeds::print("Coroutine result is a coroutine object and the type is asyncio::Coro<int>");

  int result = asyncio::run(std::move(coroutine_result), options);
  seeds::print(result);  // 2
}

const seeds::Register reg{{
    .name = "coroutine_add_one",
    .title = "a coroutine object is lazy; asyncio::run() runs it and returns its result",
    .article = "001 asyncio 파헤치기 ② §1-2",
    .order = 200,
    .program = &program,
}};

}  // namespace
