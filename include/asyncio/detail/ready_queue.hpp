// Internal: the loop's ready queue, a growable ring of Runnable pointers (FIFO).
// Pushing never allocates once the ring has grown to the workload's high-water mark.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <memory>

#include "asyncio/detail/runnable.hpp"

namespace asyncio::detail {

class ReadyQueue {
 public:
  ReadyQueue() : buf_(std::make_unique_for_overwrite<Runnable*[]>(kInitial)), mask_(kInitial - 1) {}

  void push(Runnable* r) {
    if (size_ > mask_) grow();
    buf_[(head_ + size_) & mask_] = r;
    ++size_;
  }
  Runnable* pop() noexcept {
    Runnable* r = buf_[head_];
    head_ = (head_ + 1) & mask_;
    --size_;
    return r;
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

 private:
  static constexpr std::size_t kInitial = 256;
  void grow() {
    const std::size_t old_cap = mask_ + 1;
    const std::size_t cap = old_cap * 2;
    auto nb = std::make_unique_for_overwrite<Runnable*[]>(cap);  // slots are written before read
    // The ring is full (size_ == old_cap): its two runs, head..end and 0..head, in order.
    assert(size_ == old_cap);
    Runnable** const old = buf_.get();
    std::copy(old + head_, old + old_cap, nb.get());
    std::copy(old, old + head_, nb.get() + (old_cap - head_));
    buf_ = std::move(nb);
    head_ = 0;
    mask_ = cap - 1;
  }

  std::unique_ptr<Runnable*[]> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t mask_;
};

}  // namespace asyncio::detail
