// `yield from` delegates to sub-generators. Article 003 ("Generator"):
//
//   def generator():
//       yield from generator_2()
//       yield from generator_3()
//
// (generator_2 and generator_3 are not shown in the article; here they yield 1, 2 and 3.)
// C++ has no `yield from`; asyncio::elements_of() marks a co_yield that delegates to another
// generator until it is exhausted (like C++23's std::generator).
#include <asyncio/generators.hpp>

#include "seeds.hpp"

namespace {

asyncio::Generator<int> generator_2() {
  co_yield 1;
  co_yield 2;
}

asyncio::Generator<int> generator_3() {
  co_yield 3;
}

asyncio::Generator<int> generator() {
  co_yield asyncio::elements_of(generator_2());  // yield from generator_2()
  co_yield asyncio::elements_of(generator_3());  // yield from generator_3()
}

asyncio::Coro<void> async_main() {
  for (int value : generator()) {
    seeds::print(value);
  }
  co_return;
}

const seeds::Register reg{{
    .name = "yield_from",
    .title = "yield from: one generator delegating to two others",
    .article = "003 파이선에서 asyncio로 비동기 처리하기 (Generator)",
    .order = 320,
    .main = &async_main,
}};

}  // namespace
