// JSON Pointers (RFC 6901) compiled into steps; private to the mapping module (mapping.cpp,
// batch.cpp).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mdagg::detail {

// One reference token of a JSON Pointer. RFC 6901 lets a token that looks like an array
// index address an object member of that name too, so a step keeps both forms.
struct Step {
    std::string key;          // unescaped (~1 -> '/', ~0 -> '~')
    std::int64_t index = -1;  // array index, or -1 when the token is not one
    bool wildcard = false;    // '*': any single object member, never an array element
};
using Pointer = std::vector<Step>;

inline std::int64_t array_index(std::string_view token) noexcept {
    // "0" or a digit string without a leading zero ("-" never names an existing element).
    if (token.empty() || token.size() > 18 || (token.size() > 1 && token[0] == '0')) return -1;
    std::int64_t v = 0;
    for (char c : token) {
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

inline Pointer compile_pointer(std::string_view text, const char* field) {
    auto fail = [&](const char* why) {
        throw std::invalid_argument(std::string("field '") + field + "': invalid JSON Pointer \"" +
                                    std::string(text) + "\": " + why);
    };
    if (text.front() != '/') fail("must start with '/'");
    Pointer steps;
    std::string_view rest = text.substr(1);
    for (;;) {
        const std::size_t slash = rest.find('/');
        const std::string_view raw = rest.substr(0, slash);
        Step step;
        step.wildcard = raw == "*";
        for (std::size_t i = 0; i < raw.size(); ++i) {
            if (raw[i] != '~') {
                step.key.push_back(raw[i]);
                continue;
            }
            if (i + 1 == raw.size() || (raw[i + 1] != '0' && raw[i + 1] != '1')) {
                fail("'~' must be followed by '0' or '1'");
            }
            step.key.push_back(raw[++i] == '0' ? '~' : '/');
        }
        step.index = array_index(step.key);
        steps.push_back(std::move(step));
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    return steps;
}

}  // namespace mdagg::detail
