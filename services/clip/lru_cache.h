// A fixed-capacity least-recently-used map. The clip service keeps image and text embeddings in
// it so that repeated inputs (a source image ranked against many candidate sets, the same prompt
// scored again) skip the forward pass.
//
// Externally synchronized: a model instance's executor thread is its only user.
#pragma once

#include <cstddef>
#include <list>
#include <unordered_map>
#include <utility>

namespace imginterp::clip_service {

template <typename Key, typename Value, typename Hash = std::hash<Key>>
class LruCache {
 public:
  // A capacity of 0 disables the cache (Find misses, Insert drops).
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  // The value for `key`, marked most recently used; nullptr on a miss. The pointer is valid
  // until the next Insert.
  const Value* Find(const Key& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    entries_.splice(entries_.begin(), entries_, it->second);
    return &it->second->second;
  }

  // Inserts or replaces `key`, evicting the least recently used entry when full.
  void Insert(const Key& key, Value value) {
    if (capacity_ == 0) return;
    if (auto it = index_.find(key); it != index_.end()) {
      it->second->second = std::move(value);
      entries_.splice(entries_.begin(), entries_, it->second);
      return;
    }
    if (entries_.size() == capacity_) {
      index_.erase(entries_.back().first);
      entries_.pop_back();
    }
    entries_.emplace_front(key, std::move(value));
    index_.emplace(key, entries_.begin());
  }

  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  using Entry = std::pair<Key, Value>;
  const size_t capacity_;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<Key, typename std::list<Entry>::iterator, Hash> index_;
};

}  // namespace imginterp::clip_service
