// Built against an installed asyncio-cpp by tests/install/run.cmake, once with
// find_package(asyncio) and once with `pkg-config --cflags --libs asyncio`.
#include <asyncio.hpp>

asyncio::Coro<int> f() {
  co_await asyncio::sleep(0);
  co_return 42;
}

int main() {
  return asyncio::run(f()) == 42 ? 0 : 1;
}
