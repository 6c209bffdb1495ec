// For bench/json_bench.cpp only: a batch answer read with simdjson's On-Demand API, delivering
// the same events as JsonReader (src/mapping/json_reader.hpp). Measured against the daemon's
// readers; the daemon uses src/mapping/simd_reader.hpp instead, which was faster.
//
// On Demand validates only what it visits, so the walk visits every value and checks each
// token with the reader's own grammar (numbers, literals): what simdjson leaves unchecked is
// checked here, and what it refuses goes to the hand-written reader, which then decides (the
// same class: malformed_json, or valid after all, e.g. numbers beyond double's range never
// reach simdjson's number parser here). Stage 1 already checks UTF-8 and unescaped control
// characters in strings. A body with a backslash anywhere is left to the reader too: escapes
// are rare in venue answers, and without them every string's content is the bytes between its
// quotes, so no string needs decoding nor a second look.
#pragma once

#include "simd_reader.hpp"  // simd_walkable(), simd_padding

#include <simdjson.h>

#include <cstring>
#include <string_view>

namespace mdagg::detail {

namespace od = simdjson::ondemand;

template <class Handler>
class SimdWalk {
public:
    SimdWalk(Handler& h, std::string_view body) : h_(h), end_(body.data() + body.size()) {}

    // False when simdjson refused the text or it is not exactly one JSON object or array: the
    // caller asks the reader. True means the reader would have delivered the same events.
    bool run(od::parser& parser, std::string_view body, std::size_t capacity) {
        od::document doc;
        if (parser.iterate(body.data(), body.size(), capacity).get(doc)) return false;
        doc_ = &doc;
        od::json_type type;
        if (doc.type().get(type)) return false;
        // A scalar at the root has no entries; rare enough to leave to the reader.
        if (type != od::json_type::object && type != od::json_type::array) return false;
        const char* start = nullptr;
        if (doc.current_location().get(start)) return false;
        if (type == od::json_type::object) {
            od::object o;
            if (doc.get_object().get(o) || !object(o, start)) return false;
        } else {
            od::array a;
            if (doc.get_array().get(a) || !array(a, start)) return false;
        }
        // Nothing after the root: 3.0.1's document has no at_end(); its location says it.
        const char* rest = nullptr;
        return doc.current_location().get(rest) == simdjson::OUT_OF_BOUNDS;
    }

private:
    static std::string_view trimmed(std::string_view t) noexcept {
        while (!t.empty() && (t.back() == ' ' || t.back() == '\n' || t.back() == '\r' || t.back() == '\t'))
            t.remove_suffix(1);
        return t;
    }

    // One past a container that just closed: the next token (a ',' or the parent's close,
    // whitespace before it included, which the entry mapper skips), or the body's end.
    const char* after_container() {
        const char* p = nullptr;
        if (doc_->current_location().get(p)) return end_;
        return p;
    }

    bool object(od::object& o, const char* start) {
        h_.value_start(start);
        h_.begin_container();
        for (auto member : o) {
            od::field f;
            if (std::move(member).get(f)) return false;
            // No backslash in the body: the key ends at the next quote.
            const char* k = f.key().raw();
            const auto* q = static_cast<const char*>(std::memchr(k, '"', static_cast<std::size_t>(end_ - k)));
            if (q == nullptr) return false;
            h_.key(std::string_view(k, static_cast<std::size_t>(q - k)), false);
            if (!value(f.value())) return false;
        }
        h_.end_container();
        h_.value_end(after_container());
        return true;
    }

    bool array(od::array& a, const char* start) {
        h_.value_start(start);
        h_.begin_container();
        for (auto element : a) {
            od::value v;
            if (std::move(element).get(v)) return false;
            h_.element();
            if (!value(v)) return false;
        }
        h_.end_container();
        h_.value_end(after_container());
        return true;
    }

    bool value(od::value& v) {
        const std::string_view raw = v.raw_json_token();
        if (raw.empty()) return false;
        const char* const start = raw.data();
        switch (*start) {
        case '{': {
            od::object o;
            return !v.get_object().get(o) && object(o, start);
        }
        case '[': {
            od::array a;
            return !v.get_array().get(a) && array(a, start);
        }
        default: break;
        }
        const std::string_view token = trimmed(raw);
        h_.value_start(start);
        switch (*start) {
        case '"':
            if (token.size() < 2 || token.back() != '"') return false;
            h_.scalar(JsonKind::string, token.substr(1, token.size() - 2), false);
            break;
        case 't':
        case 'f':
        case 'n':
            if (token == "null") {
                h_.scalar(JsonKind::null, token, false);
            } else if (token == "true" || token == "false") {
                h_.scalar(JsonKind::boolean, token, false);
            } else {
                return false;
            }
            break;
        default: {
            const char* p = token.data();
            const char* const token_end = p + token.size();
            bool integer = false;
            if (!scan_json_number(p, token_end, integer) || p != token_end) return false;
            h_.scalar(integer ? JsonKind::integer : JsonKind::number, token, false);
            break;
        }
        }
        h_.value_end(token.data() + token.size());
        return true;
    }

    Handler& h_;
    const char* end_;
    od::document* doc_ = nullptr;
};

}  // namespace mdagg::detail
