// Internal: a FIFO of small trivially copyable entries stored in 4 KiB chunks, for the loop's
// ready queue and the timer heap's sorted run.
//
// Unlike a growable ring or vector, it never copies its contents and never holds two buffers
// at once: a chunk is allocated when the back reaches the end of the last one and given back
// when the front leaves it. A queue that swells to 100,000 entries and drains again (100,000
// tasks created at once, or waking at once) costs its entries' bytes, not twice that, and the
// chunks it frees serve the next queue that grows. Up to 16 emptied chunks (64 KiB) are kept
// as spares, so a queue that keeps within that allocates nothing in steady state.
#pragma once

#include <cassert>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace asyncio::detail {

template <class T>
class ChunkedFifo {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  static constexpr std::size_t kChunkBytes = 4096;
  static constexpr std::size_t kPerChunk = kChunkBytes / sizeof(T);
  static constexpr std::size_t kMaxSpares = 16;
  static_assert(kPerChunk >= 2);

  ChunkedFifo() = default;
  ChunkedFifo(const ChunkedFifo&) = delete;
  ChunkedFifo& operator=(const ChunkedFifo&) = delete;
  ~ChunkedFifo() {
    for (std::size_t i = 0; i < nchunks_; ++i) free_chunk(chunk(i));
    while (spares_ != nullptr) {
      free_chunk(reinterpret_cast<T*>(std::exchange(spares_, spares_->next)));
    }
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  // push_back, front and pop_front are the loop's hottest code (two pushes and two pops per
  // echo round trip): each has a few-instruction inline path through cached pointers (back_,
  // back_end_, front_chunk_), and an out-of-line one for chunk changes.
  void push_back(const T& v) {
    if (back_ != back_end_) [[likely]] {
      *back_++ = v;
      ++size_;
      return;
    }
    push_back_new_chunk(v);
  }
  [[nodiscard]] T& front() noexcept {
    assert(size_ > 0);
    return front_chunk_[head_];
  }
  [[nodiscard]] const T& front() const noexcept {
    assert(size_ > 0);
    return front_chunk_[head_];
  }
  void pop_front() noexcept {
    assert(size_ > 0);
    --size_;
    if (++head_ == kPerChunk || size_ == 0) [[unlikely]] {
      front_chunk_done();
    }
  }
  /// The entry `i` places behind the front.
  [[nodiscard]] T& operator[](std::size_t i) noexcept {
    assert(i < size_);
    const std::size_t k = head_ + i;
    return chunk(k / kPerChunk)[k % kPerChunk];
  }
  /// Keeps the first `n` entries and forgets the rest; chunks left empty go back.
  void truncate(std::size_t n) noexcept {
    assert(n <= size_);
    if (n == 0) {
      clear();
      return;
    }
    size_ = n;
    const std::size_t used = (head_ + n - 1) / kPerChunk + 1;
    while (nchunks_ > used) release_chunk(chunk(--nchunks_));
    sync_ends();
  }
  /// Chunks holding entries (or, when empty, kept for the next push).
  [[nodiscard]] std::size_t chunks_in_use() const noexcept { return nchunks_; }
  /// Emptied chunks kept for reuse (at most kMaxSpares).
  [[nodiscard]] std::size_t spare_chunks() const noexcept { return spare_count_; }
  /// Forgets every entry; keeps one chunk for what comes next.
  void clear() noexcept {
    while (nchunks_ > 1) release_chunk(chunk(--nchunks_));
    head_ = 0;
    size_ = 0;
    sync_ends();
  }

 private:
  /// push_back() when the last chunk is full (or there is none).
  [[gnu::noinline]] void push_back_new_chunk(const T& v) {
    add_chunk();  // may throw before anything changes
    sync_ends();
    *back_++ = v;
    ++size_;
  }
  /// pop_front() emptied the queue or left the front chunk.
  [[gnu::noinline]] void front_chunk_done() noexcept {
    if (head_ == kPerChunk) {
      head_ = 0;
      release_chunk(chunk(0));
      first_ = (first_ + 1) & mask_;
      --nchunks_;
    } else {
      head_ = 0;  // empty: start over at the front of the chunk already held
    }
    sync_ends();
  }
  /// Recomputes the cached pointers from head_, size_ and the chunks in use.
  void sync_ends() noexcept {
    front_chunk_ = nchunks_ > 0 ? chunk(0) : nullptr;
    const std::size_t k = head_ + size_;
    if (k / kPerChunk < nchunks_) {
      T* c = chunk(k / kPerChunk);
      back_ = c + k % kPerChunk;
      back_end_ = c + kPerChunk;
    } else {
      back_ = back_end_ = nullptr;
    }
  }

  static T* new_chunk() { return static_cast<T*>(::operator new(kChunkBytes)); }
  static void free_chunk(T* c) noexcept { ::operator delete(c); }
  /// The i-th chunk in use (0 holds the front).
  [[nodiscard]] T* chunk(std::size_t i) const noexcept { return table_[(first_ + i) & mask_]; }
  void add_chunk() {
    if (nchunks_ == capacity()) grow_table();  // may throw before anything changes
    T* c = nullptr;
    if (spares_ != nullptr) {
      c = reinterpret_cast<T*>(std::exchange(spares_, spares_->next));
      --spare_count_;
    } else {
      c = new_chunk();
    }
    table_[(first_ + nchunks_) & mask_] = c;
    ++nchunks_;
  }
  [[nodiscard]] std::size_t capacity() const noexcept { return table_ ? mask_ + 1 : 0; }
  /// The table of chunks is a ring too: it grows (doubling) only when more chunks are in use
  /// at once than ever before.
  void grow_table() {
    const std::size_t cap = capacity() == 0 ? 8 : 2 * capacity();
    auto bigger = std::make_unique<T*[]>(cap);
    for (std::size_t i = 0; i < nchunks_; ++i) bigger[i] = chunk(i);
    table_ = std::move(bigger);
    mask_ = cap - 1;
    first_ = 0;
  }
  void release_chunk(T* c) noexcept {
    if (spare_count_ == kMaxSpares) {
      free_chunk(c);
      return;
    }
    spares_ = ::new (static_cast<void*>(c)) Spare{spares_};
    ++spare_count_;
  }

  struct Spare {
    Spare* next;
  };
  T* back_ = nullptr;            // where the next push goes (== back_end_: the last chunk is full)
  T* back_end_ = nullptr;        // the end of back_'s chunk
  T* front_chunk_ = nullptr;     // chunk(0) (null when no chunk is in use)
  std::unique_ptr<T*[]> table_;  // a ring of chunk pointers; chunk(0) holds the front
  std::size_t mask_ = 0;
  std::size_t first_ = 0;    // where chunk(0) sits in table_
  std::size_t nchunks_ = 0;  // chunks in use
  std::size_t head_ = 0;     // the front's offset in chunk(0)
  std::size_t size_ = 0;
  Spare* spares_ = nullptr;  // emptied chunks kept for reuse, linked through their first bytes
  std::size_t spare_count_ = 0;
};

}  // namespace asyncio::detail
