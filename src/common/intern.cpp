#include <mdagg/common.hpp>

#include <mutex>
#include <set>

namespace mdagg {

const std::string* intern_name(std::string_view text) {
    static std::mutex mutex;
    static std::set<std::string, std::less<>> names;  // nodes never move: pointers stay valid
    std::lock_guard lock(mutex);
    auto it = names.find(text);
    if (it == names.end()) it = names.emplace(text).first;
    return &*it;
}

}  // namespace mdagg
