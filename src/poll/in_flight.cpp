#include "in_flight.hpp"

#include <new>
#include <vector>

namespace mdagg::detail {
namespace {

constexpr std::size_t max_spares = 512;  // per thread; at most the polls in flight are lent

std::vector<std::string>& spares() {
    thread_local std::vector<std::string> s;
    return s;
}

}  // namespace

void lend_body(std::string& body) noexcept {
    auto& s = spares();
    if (s.empty() || body.capacity() > std::string().capacity()) return;
    body.swap(s.back());
    s.pop_back();
    body.clear();
}

void return_body(std::string& body) noexcept {
    if (body.capacity() <= std::string().capacity()) return;  // nothing on the heap
    auto& s = spares();
    if (s.size() < max_spares) {
        try {
            if (s.capacity() == 0) s.reserve(max_spares);  // once: no growth in the poll path
            s.push_back(std::move(body));
        } catch (const std::bad_alloc&) {
        }
    }
    std::string().swap(body);
}

std::size_t spare_bodies() noexcept { return spares().size(); }

}  // namespace mdagg::detail
