#include "daemon/protocol.h"

#include <cstring>

namespace gearshift::daemon {

const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::kMalformed: return "malformed";
    case ErrorCode::kOversized: return "oversized";
    case ErrorCode::kUnknownType: return "unknown-type";
    case ErrorCode::kBadVersion: return "bad-version";
    case ErrorCode::kNotAllowed: return "not-allowed";
    case ErrorCode::kBadGpu: return "bad-gpu";
    case ErrorCode::kUnsupportedClock: return "unsupported-clock";
    case ErrorCode::kHeldByOther: return "held-by-other";
    case ErrorCode::kBackend: return "backend";
    case ErrorCode::kLeaseExpired: return "lease-expired";
  }
  return "unknown";
}

int request_payload_size(uint8_t type) {
  switch (static_cast<MsgType>(type)) {
    case MsgType::kHello: return 0;
    case MsgType::kLock: return 8;
    case MsgType::kReset: return 4;
    case MsgType::kHeartbeat: return 0;
    case MsgType::kStatus: return 0;
    case MsgType::kClocks: return 4;
    default: return -1;
  }
}

namespace {

ParseResult fail(ErrorCode code, const char* detail) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error = code;
  r.detail = detail;
  return r;
}

}  // namespace

ParseResult parse_request(const uint8_t* buf, size_t len) {
  ParseResult r;
  // Judge the magic byte by byte so garbage is refused without waiting for a whole header.
  if (len >= 1 && buf[0] != uint8_t(kMagic & 0xff)) return fail(ErrorCode::kMalformed, "bad magic");
  if (len >= 2 && buf[1] != uint8_t(kMagic >> 8)) return fail(ErrorCode::kMalformed, "bad magic");
  if (len >= 3 && buf[2] != kVersion)
    return fail(ErrorCode::kBadVersion, "unsupported protocol version (this daemon speaks 1)");
  if (len < kHeaderSize) return r;
  const uint8_t type = buf[3];
  const uint32_t length = get_u32(buf + 4);
  if (length > kMaxPayload) return fail(ErrorCode::kOversized, "payload longer than 4096 bytes");
  const int expected = request_payload_size(type);
  if (expected < 0) return fail(ErrorCode::kUnknownType, "unknown request type");
  if (length != static_cast<uint32_t>(expected))
    return fail(ErrorCode::kMalformed, "payload size does not match the request type");
  if (len < kHeaderSize + length) return r;
  r.status = ParseStatus::kFrame;
  r.header.version = buf[2];
  r.header.type = static_cast<MsgType>(type);
  r.header.length = length;
  r.consumed = kHeaderSize + length;
  return r;
}

size_t write_header(uint8_t* out, MsgType type, uint32_t length) {
  put_u16(out, kMagic);
  out[2] = kVersion;
  out[3] = static_cast<uint8_t>(type);
  put_u32(out + 4, length);
  return kHeaderSize;
}

size_t write_lock(uint8_t* out, uint32_t gpu, uint32_t mhz) {
  write_header(out, MsgType::kLock, 8);
  put_u32(out + 8, gpu);
  put_u32(out + 12, mhz);
  return kHeaderSize + 8;
}

size_t write_gpu_request(uint8_t* out, MsgType type, uint32_t gpu) {
  write_header(out, type, 4);
  put_u32(out + 8, gpu);
  return kHeaderSize + 4;
}

size_t write_empty(uint8_t* out, MsgType type) { return write_header(out, type, 0); }

size_t write_error(uint8_t* out, ErrorCode code, const char* text) {
  size_t n = text ? std::strlen(text) : 0;
  if (n > kMaxErrorText) n = kMaxErrorText;
  write_header(out, MsgType::kError, static_cast<uint32_t>(4 + n));
  put_u16(out + 8, static_cast<uint16_t>(code));
  put_u16(out + 10, 0);
  if (n) std::memcpy(out + 12, text, n);
  return kHeaderSize + 4 + n;
}

ParseStatus parse_reply(const uint8_t* buf, size_t len, Reply* out) {
  if (len < kHeaderSize) return ParseStatus::kNeedMore;
  if (get_u16(buf) != kMagic || buf[2] != kVersion) return ParseStatus::kError;
  const uint32_t length = get_u32(buf + 4);
  if (length > kMaxPayload) return ParseStatus::kError;
  const uint8_t type = buf[3];
  switch (static_cast<MsgType>(type)) {
    case MsgType::kOk: if (length != 0) return ParseStatus::kError; break;
    case MsgType::kError: if (length < 4 || length > 4 + kMaxErrorText) return ParseStatus::kError; break;
    case MsgType::kHelloReply: if (length < 12) return ParseStatus::kError; break;
    case MsgType::kStatusReply:
    case MsgType::kClocksReply: if (length < 4) return ParseStatus::kError; break;
    default: return ParseStatus::kError;
  }
  if (len < kHeaderSize + length) return ParseStatus::kNeedMore;
  out->type = static_cast<MsgType>(type);
  out->payload = buf + kHeaderSize;
  out->length = length;
  out->consumed = kHeaderSize + length;
  return ParseStatus::kFrame;
}

}  // namespace gearshift::daemon
