// The algorithm of dpkg's lib/dpkg/version.c (verrevcmp), on string_views.
#include "pbs_patch/debian_version.hpp"

#include <cctype>

namespace pbs_patch {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// dpkg's character weight in the non-digit parts: '~' first, then the end, then letters, then the rest.
int order(char c) {
    if (is_digit(c)) return 0;
    if (is_alpha(c)) return c;
    if (c == '~') return -1;
    if (c != '\0') return c + 256;
    return 0;
}

int compare_part(std::string_view a, std::string_view b) {
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < a.size() || j < b.size()) {
        int first_diff = 0;
        while ((i < a.size() && !is_digit(a[i])) || (j < b.size() && !is_digit(b[j]))) {
            const int ac = order(i < a.size() ? a[i] : '\0');
            const int bc = order(j < b.size() ? b[j] : '\0');
            if (ac != bc) return ac - bc;
            ++i;
            ++j;
        }
        while (i < a.size() && a[i] == '0') ++i;
        while (j < b.size() && b[j] == '0') ++j;
        while (i < a.size() && is_digit(a[i]) && j < b.size() && is_digit(b[j])) {
            if (first_diff == 0) first_diff = a[i] - b[j];
            ++i;
            ++j;
        }
        if (i < a.size() && is_digit(a[i])) return 1;
        if (j < b.size() && is_digit(b[j])) return -1;
        if (first_diff != 0) return first_diff;
    }
    return 0;
}

}  // namespace

DebianVersion parse_debian_version(std::string_view text) {
    DebianVersion v;
    const auto colon = text.find(':');
    if (colon != std::string_view::npos) {
        const auto epoch = text.substr(0, colon);
        unsigned long value = 0;
        bool numeric = !epoch.empty();
        for (char c : epoch) {
            if (!is_digit(c)) {
                numeric = false;
                break;
            }
            value = value * 10 + static_cast<unsigned long>(c - '0');
        }
        v.epoch = numeric ? value : 0;
        text.remove_prefix(colon + 1);
    }
    const auto dash = text.rfind('-');
    if (dash != std::string_view::npos) {
        v.upstream = std::string(text.substr(0, dash));
        v.revision = std::string(text.substr(dash + 1));
    } else {
        v.upstream = std::string(text);
    }
    return v;
}

int compare_debian_versions(std::string_view a, std::string_view b) {
    const auto va = parse_debian_version(a);
    const auto vb = parse_debian_version(b);
    if (va.epoch != vb.epoch) return va.epoch < vb.epoch ? -1 : 1;
    if (const int c = compare_part(va.upstream, vb.upstream); c != 0) return c < 0 ? -1 : 1;
    const int c = compare_part(va.revision, vb.revision);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace pbs_patch
