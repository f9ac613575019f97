// A generator is a coroutine the caller drives: next() runs it to its first yield, send(v)
// resumes it with v as the value of the yield expression. Article 003 ("Generator"):
//
//   def generator_coroutine():
//       print('callee 1')
//       x = yield 1
//       print('callee 2: %d' % x)
//       x = yield 2
//
//   task = generator_coroutine()
//   i = next(task)    # i = 1 / callee 1
//   i = task.send(10) # i = 2 / callee 2: 10
//
// The article's comments say what i holds; here they are printed.
#include <optional>

#include <asyncio/generators.hpp>

#include "seeds.hpp"

namespace {

asyncio::Generator<int, int> generator_coroutine() {
  seeds::print("callee 1");
  int x = co_yield 1;
  seeds::print("callee 2: ", x);
  x = co_yield 2;
}

asyncio::Coro<void> async_main() {
  asyncio::Generator<int, int> task = generator_coroutine();
  std::optional<int> i = task.next();
  seeds::print("i = ", i.value());
  i = task.send(10);
  seeds::print("i = ", i.value());
  co_return;
}

const seeds::Register reg{{
    .name = "generator_send",
    .title = "Generator<int, int>: next() then send(10) into `x = co_yield 1`",
    .article = "003 파이선에서 asyncio로 비동기 처리하기 (Generator)",
    .order = 310,
    .main = &async_main,
}};

}  // namespace
