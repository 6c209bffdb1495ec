#include "simd_reader.hpp"

#include <limits>

namespace mdagg::detail {

bool SimdReader::stage1(std::string_view body) noexcept {
    // Stage 1 indexes with 32-bit offsets; max_body_bytes keeps answers far below that.
    if (body.empty() || body.size() > std::numeric_limits<std::uint32_t>::max() / 2) return false;
    // Grown to the largest answer read on this thread, never per answer. Stage 1 alone uses no
    // depth stack: the depth only sizes stage 2's, which is never run.
    constexpr std::size_t depth = 64;
    if (!impl_) {
        if (simdjson::get_active_implementation()->create_dom_parser_implementation(body.size(), depth, impl_))
            return false;
    } else if (impl_->capacity() < body.size() && impl_->set_capacity(body.size())) {
        return false;
    }
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(body.data());
    if (impl_->stage1(bytes, body.size(), simdjson::stage1_mode::regular)) return false;
    buf_ = body.data();
    idx_ = impl_->structural_indexes.get();
    n_ = impl_->n_structural_indexes;
    return n_ != 0 && idx_[n_] == body.size();  // the sentinel token_end() relies on
}

}  // namespace mdagg::detail
