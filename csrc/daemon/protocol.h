#pragma once
// Wire protocol between the clock daemon and its clients (Unix stream socket).
//
// Every message is one frame: an 8-byte header then a payload whose size the header states.
// Header (little-endian): u16 magic 'GS' | u8 version | u8 type | u32 payload length.
// Every request type has one exact payload size, so a parser never has to guess; replies are
// bounded by kMaxPayload. Fixed-size frames keep the request path free of allocation.
#include <cstddef>
#include <cstdint>

namespace gearshift::daemon {

constexpr uint16_t kMagic = 0x5347;  // bytes 'G' 'S' on the wire
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 8;
constexpr size_t kMaxPayload = 4096;
constexpr size_t kMaxFrame = kHeaderSize + kMaxPayload;
constexpr size_t kMaxErrorText = 480;
constexpr uint32_t kMaxGpus = 64;
constexpr uint32_t kMaxClocks = 1000;

enum class MsgType : uint8_t {
  // requests
  kHello = 1,      // -> kHelloReply (version check, lease length, gpu count)
  kLock = 2,       // u32 gpu, u32 mhz -> kOk | kError
  kReset = 3,      // u32 gpu -> kOk | kError
  kHeartbeat = 4,  // -> kOk
  kStatus = 5,     // -> kStatusReply
  kClocks = 6,     // u32 gpu -> kClocksReply | kError
  // replies
  kOk = 0x80,
  kError = 0x81,        // u16 code, u16 reserved, text (<= kMaxErrorText bytes, no NUL)
  kHelloReply = 0x82,   // u32 gpu_count, u32 lease_ms, u32 daemon_pid, backend name bytes
  kStatusReply = 0x83,  // u32 n, n x {u32 index, u32 locked_mhz, u32 uid, u32 pid, u32 flags}
  kClocksReply = 0x84,  // u32 gpu, u32 n, n x u32 mhz
};

// Error codes; the first five are protocol violations after which the daemon closes the
// connection, the rest refuse one request and keep the connection open.
enum class ErrorCode : uint16_t {
  kMalformed = 1,
  kOversized = 2,
  kUnknownType = 3,
  kBadVersion = 4,
  kNotAllowed = 5,
  kBadGpu = 10,
  kUnsupportedClock = 11,
  kHeldByOther = 12,
  kBackend = 13,
  kLeaseExpired = 14,
};

inline bool closes_connection(ErrorCode c) { return static_cast<uint16_t>(c) < 10; }
const char* error_code_name(ErrorCode c);

struct FrameHeader {
  uint8_t version = 0;
  MsgType type{};
  uint32_t length = 0;
};

// Outcome of looking at the bytes received so far.
enum class ParseStatus {
  kNeedMore,   // not a whole frame yet (and nothing wrong so far)
  kFrame,      // a whole, valid request frame: header filled, `consumed` bytes belong to it
  kError,      // a protocol violation: `error` and `detail` say which
};

struct ParseResult {
  ParseStatus status = ParseStatus::kNeedMore;
  FrameHeader header;
  size_t consumed = 0;
  ErrorCode error = ErrorCode::kMalformed;
  const char* detail = "";
};

// Parses one request frame at the start of buf. Never reads past len; rejects a bad magic or an
// oversized length from the header alone, before the payload arrives.
ParseResult parse_request(const uint8_t* buf, size_t len);

// The exact payload size of a request type, or -1 for an unknown/reply type.
int request_payload_size(uint8_t type);

inline uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint16_t get_u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
inline void put_u32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v); p[1] = uint8_t(v >> 8); p[2] = uint8_t(v >> 16); p[3] = uint8_t(v >> 24);
}
inline void put_u16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v); p[1] = uint8_t(v >> 8); }

// Writers into a caller buffer of at least kMaxFrame bytes; each returns the frame size.
size_t write_header(uint8_t* out, MsgType type, uint32_t length);
size_t write_lock(uint8_t* out, uint32_t gpu, uint32_t mhz);
size_t write_gpu_request(uint8_t* out, MsgType type, uint32_t gpu);  // kReset, kClocks
size_t write_empty(uint8_t* out, MsgType type);                      // kHello, kOk, ...
size_t write_error(uint8_t* out, ErrorCode code, const char* text);

struct GpuStatus {
  uint32_t index = 0;
  uint32_t locked_mhz = 0;  // 0: not locked
  uint32_t holder_uid = 0;
  uint32_t holder_pid = 0;
  bool held = false;
};

// Reply decoding for clients: kNeedMore until a whole reply frame is there; kError on a bad
// magic, version, length or type.
struct Reply {
  MsgType type{};
  const uint8_t* payload = nullptr;
  uint32_t length = 0;
  size_t consumed = 0;
};
ParseStatus parse_reply(const uint8_t* buf, size_t len, Reply* out);

}  // namespace gearshift::daemon
