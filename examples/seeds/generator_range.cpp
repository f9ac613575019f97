// A generator produces its values one at a time, on demand; creating it runs nothing.
// Article 003 ("Generator"):
//
//   def generator(nums):
//       for i in nums:
//           yield i
//
//   print(generator([1, 2, 3, 4, 5]))   # <generator object generator at 0x00E35568>
//
// and the iteration the article describes (next() until the end):
//
//   for i in generator([1, 2, 3, 4, 5]):
//       print(i)
#include <vector>

#include <asyncio/generators.hpp>

#include "seeds.hpp"

namespace {

// Parameters of coroutines are taken by value: the frame outlives the caller's argument.
asyncio::Generator<int> generator(std::vector<int> nums) {
  for (int i : nums) {
    co_yield i;
  }
}

asyncio::Coro<void> async_main() {
  asyncio::Generator<int> gen = generator({1, 2, 3, 4, 5});
  seeds::print("generator object created; nothing ran yet");
  for (int i : gen) {
    seeds::print(i);
  }
  co_return;
}

const seeds::Register reg{{
    .name = "generator_range",
    .title = "Generator<int>: a lazy sequence consumed with range-for",
    .article = "003 파이선에서 asyncio로 비동기 처리하기 (Generator)",
    .order = 300,
    .main = &async_main,
}};

}  // namespace
