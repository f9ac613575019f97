// The TaskGroup version of say_after_tasks: the group waits for its children when its body
// ends ("The await is implicit when the context manager exits"). Same output, same 2 s.
// Articles 000 and 002 (Python 3.11's asyncio.TaskGroup):
//
//   async def main():
//       async with asyncio.TaskGroup() as tg:
//           task1 = tg.create_task(say_after(1, 'hello'))
//           task2 = tg.create_task(say_after(2, 'world'))
//           print(f"started at {time.strftime('%X')}")
//       # The await is implicit when the context manager exits.
//       print(f"finished at {time.strftime('%X')}")
//
// C++ has no `async with`: the body is a coroutine lambda that task_group() awaits, with its
// children, before it returns. The lambda captures nothing, so nothing can dangle.
#include <string>

#include <asyncio/taskgroups.hpp>

#include "seeds.hpp"

namespace {

asyncio::Coro<void> say_after(int delay, std::string what) {
  co_await asyncio::sleep(delay);
  seeds::print(what);
}

asyncio::Coro<void> async_main() {
  co_await asyncio::task_group([](asyncio::TaskGroup& tg) -> asyncio::Coro<void> {
    asyncio::Task<void> task1 = tg.create_task(say_after(1, "hello"));
    asyncio::Task<void> task2 = tg.create_task(say_after(2, "world"));
    seeds::print("started at ", seeds::now());
    co_return;
  });
  // The await is implicit when task_group() returns.
  seeds::print("finished at ", seeds::now());
}

const seeds::Register reg{{
    .name = "taskgroup_say_after",
    .title = "TaskGroup: the group awaits its two say_after tasks (2 s)",
    .article = "000 코루틴과 태스크, 002 파이썬 코루틴과 태스크 (TaskGroup)",
    .order = 120,
    .main = &async_main,
}};

}  // namespace
