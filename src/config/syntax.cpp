#include "detail.hpp"

namespace mdagg::config_detail {

std::string describe_char(char c) {
    static constexpr char hex[] = "0123456789ABCDEF";
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
    return std::string("byte 0x") + hex[u >> 4] + hex[u & 0xf];
}

std::optional<std::string> json_pointer_error(std::string_view pointer) {
    if (pointer.empty()) return std::nullopt;
    if (!pointer.starts_with('/'))
        return "a JSON pointer starts with \"/\", like \"/bidPrice\"";
    for (std::size_t i = 0; i < pointer.size(); ++i) {
        if (pointer[i] != '~') continue;
        if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))
            return "in a JSON pointer '~' must be escaped as \"~0\" (\"~1\" stands for '/')";
    }
    return std::nullopt;
}

std::optional<std::string> symbol_error(std::string_view symbol) {
    if (symbol.empty()) return "symbol must not be empty";
    for (char c : symbol) {
        if (is_ascii_alnum(c) || c == '.' || c == '_' || c == ':' || c == '/' || c == '-') continue;
        return "invalid character " + describe_char(c) + " in symbol \"" + std::string(symbol) +
               "\"; allowed: A-Z a-z 0-9 . _ : / -";
    }
    return std::nullopt;
}

}  // namespace mdagg::config_detail
