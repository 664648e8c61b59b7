// The daemon's frame parser: exact sizes, early refusal of bad headers, and a random/mutation
// loop that must never read past the bytes it was given (run it under ASan to check that).
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "daemon/protocol.h"

using namespace gearshift::daemon;

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

int main() {
  uint8_t buf[kMaxFrame];
  // A valid lock frame parses whole, and only once all of it is there.
  const size_t n = write_lock(buf, 0, 1410);
  CHECK(n == 16);
  for (size_t i = 0; i < n; ++i) CHECK(parse_request(buf, i).status == ParseStatus::kNeedMore);
  ParseResult r = parse_request(buf, n);
  CHECK(r.status == ParseStatus::kFrame && r.consumed == 16 && r.header.type == MsgType::kLock);
  CHECK(get_u32(buf + 8) == 0 && get_u32(buf + 12) == 1410);

  // Bad magic is refused from the first byte; a bad version from the third.
  uint8_t junk[1] = {'X'};
  CHECK(parse_request(junk, 1).status == ParseStatus::kError);
  uint8_t v2[3] = {'G', 'S', 2};
  r = parse_request(v2, 3);
  CHECK(r.status == ParseStatus::kError && r.error == ErrorCode::kBadVersion);

  // An oversized length is refused from the header alone, before any payload arrives.
  write_header(buf, MsgType::kStatus, kMaxPayload + 1);
  r = parse_request(buf, kHeaderSize);
  CHECK(r.status == ParseStatus::kError && r.error == ErrorCode::kOversized);
  write_header(buf, MsgType::kLock, 4);  // lock with a reset-sized payload
  r = parse_request(buf, kHeaderSize);
  CHECK(r.status == ParseStatus::kError && r.error == ErrorCode::kMalformed);
  write_header(buf, static_cast<MsgType>(0x84), 0);  // a reply type sent as a request
  CHECK(parse_request(buf, kHeaderSize).error == ErrorCode::kUnknownType);

  // Error replies round-trip and clip their text.
  std::string longtext(1000, 'a');
  const size_t en = write_error(buf, ErrorCode::kHeldByOther, longtext.c_str());
  Reply rep;
  CHECK(parse_reply(buf, en, &rep) == ParseStatus::kFrame);
  CHECK(rep.type == MsgType::kError && rep.length == 4 + kMaxErrorText);
  CHECK(get_u16(rep.payload) == static_cast<uint16_t>(ErrorCode::kHeldByOther));

  // Random and mutated inputs in exactly-sized heap buffers: a frame never claims more bytes
  // than it was given, and its payload size always matches its type.
  std::mt19937 rng(7);
  for (int it = 0; it < 200000; ++it) {
    size_t len;
    std::vector<uint8_t> v;
    if (it % 2) {
      len = rng() % 40;
      v.resize(len);
      for (auto& b : v) b = uint8_t(rng());
    } else {
      uint8_t tmp[kMaxFrame];
      len = write_lock(tmp, rng() % 3, rng() % 3000);
      v.assign(tmp, tmp + len);
      for (int k = 0; k < 3; ++k) {
        if (!v.empty()) v[rng() % v.size()] ^= uint8_t(1u << (rng() % 8));
        if (rng() % 4 == 0) v.resize(rng() % (v.size() + 8));
      }
      len = v.size();
    }
    std::unique_ptr<uint8_t[]> exact(new uint8_t[len ? len : 1]);
    if (len) std::memcpy(exact.get(), v.data(), len);
    r = parse_request(exact.get(), len);
    if (r.status == ParseStatus::kFrame) {
      CHECK(r.consumed <= len);
      CHECK(r.consumed == kHeaderSize + size_t(request_payload_size(uint8_t(r.header.type))));
    }
    Reply rr;
    if (parse_reply(exact.get(), len, &rr) == ParseStatus::kFrame) CHECK(rr.consumed <= len);
  }
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
