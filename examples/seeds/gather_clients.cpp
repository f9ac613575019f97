// A server handling two clients at once: while client 1 waits 3 s for its I/O, client 2's
// request is handled and finishes first, after 1 s; everything is done after 3 s, not 4 s.
// Article 004 §2:
//
//   async def handle_client1():
//       print("클라이언트 1 요청 처리 중")          # handling client 1's request
//       await asyncio.sleep(3)  # I/O 작업을 모방하는 비동기 대기   (simulated I/O)
//       print("클라이언트 1의 I/O 작업 완료")       # client 1's I/O done
//
//   async def handle_client2():
//       print("클라이언트 2 요청 처리 중")
//       await asyncio.sleep(1)
//       print("클라이언트 2의 I/O 작업 완료")
//
//   async def main():
//       await asyncio.gather(handle_client1(), handle_client2()) # 동시 요청을 가정
#include "seeds.hpp"

namespace {

asyncio::Coro<void> handle_client1() {
  seeds::print("클라이언트 1 요청 처리 중");
  co_await asyncio::sleep(3);  // I/O 작업을 모방하는 비동기 대기
  seeds::print("클라이언트 1의 I/O 작업 완료");
}

asyncio::Coro<void> handle_client2() {
  seeds::print("클라이언트 2 요청 처리 중");
  co_await asyncio::sleep(1);  // I/O 작업을 모방하는 비동기 대기
  seeds::print("클라이언트 2의 I/O 작업 완료");
}

asyncio::Coro<void> async_main() {
  // gather wraps each coroutine in a task; the tuple of results (asyncio::Unit for void) is unused.
  co_await asyncio::gather(handle_client1(), handle_client2());  // 동시 요청을 가정
}

const seeds::Register reg{{
    .name = "gather_clients",
    .title = "gather(handle_client1(), handle_client2()): client 2 finishes first, 3 s in all",
    .article = "004 코루틴 그리고 비동기 프로그래밍 §2",
    .order = 400,
    .main = &async_main,
}};

}  // namespace
