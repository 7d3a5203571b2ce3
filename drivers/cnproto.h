/* cnproto.h - wire codecs for the national meter protocols of Chinese flats
 * on RS-485: DL/T 645 (2007 and 1997) electricity meters and CJ/T 188-2004
 * water meters. Pure functions over byte buffers: no I/O, no logging, no
 * allocation. A link layer (later) owns the serial port and a receive
 * buffer, sends what the build functions write and feeds what it reads to
 * the scan functions until they report a frame.
 *
 * Both protocols frame as  [FE..] 68 <address> C L DATA CS 16  with CS the
 * sum mod 256 of every byte from the first 68 to the last data byte, and
 * numbers in BCD, least significant byte first. Items the standards leave
 * to vendors (or that could not be verified) are fields of the option
 * structs; start from the *_options_init() defaults. */
#ifndef CNPROTO_H
#define CNPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "estate.h"

#define CN_PREAMBLE_BYTE 0xFE
#define CN_FRAME_START 0x68
#define CN_FRAME_END 0x16
#define CN_MAX_PREAMBLE 8   /* wake-up FE bytes a build function will write */
#define CN_MAX_DATA 255     /* L is one byte */

/* Control code bits shared by both protocols. */
#define CN_C_REPLY 0x80     /* D7: sent by the meter */
#define CN_C_ABNORMAL 0x40  /* D6: the meter could not do what was asked */
#define CN_C_FOLLOWS 0x20   /* D5 (DL/T 645): more frames follow */

/* --- receive: finding frames in a byte stream ------------------------------ */

enum cn_scan_result {
    CN_SCAN_FRAME,     /* a complete frame with a good checksum and end byte */
    CN_SCAN_NEED_MORE, /* no complete frame yet: read more bytes */
};

/* What one scan of a receive buffer found. The caller drops
 * buf[0..consumed) and keeps the rest for the next scan:
 *  - FRAME: consumed covers the frame and everything before it (preamble,
 *    noise, frames that failed their checks);
 *  - NEED_MORE: consumed covers the bytes that can never start a frame;
 *    buf[consumed..len) may be the beginning of one.
 * A candidate 68 whose checksum or end byte is wrong is skipped one byte at
 * a time, so a good frame that starts inside it is still found. If a link
 * times out while bytes are kept, it drops them all before the next
 * request. */
struct cn_scan {
    enum cn_scan_result result;
    size_t consumed;
    unsigned bad_checksum; /* candidates dropped for their checksum */
    unsigned bad_end;      /* candidates dropped for a missing 16 */
};

/* --- BCD and addresses (both protocols) ------------------------------------ */

/* Sum mod 256 of data[0..len). */
uint8_t cn_checksum(const uint8_t *data, size_t len);

/* BCD digits, least significant byte first, as an integer. nbytes <= 9.
 * EST_ERR_PROTOCOL when a nibble is not a decimal digit. */
est_err cn_bcd_to_uint(const uint8_t *bytes, size_t nbytes, uint64_t *out);

/* A BCD number with decimals fixed digits after the point; with sign_bit
 * the highest bit of the most significant (last) byte is the sign (set =
 * negative) and the other bits are digits. value = digits / 10^decimals,
 * the double nearest that decimal. */
est_err cn_bcd_decode(const uint8_t *bytes, size_t nbytes, unsigned decimals, bool sign_bit,
                      double *value);

/* The inverse of cn_bcd_decode: value rounded to decimals places.
 * EST_ERR_RANGE when it does not fit (or is negative without sign_bit). */
est_err cn_bcd_encode(double value, size_t nbytes, unsigned decimals, bool sign_bit,
                      uint8_t *bytes);

/* "000000123456" (the number printed on the meter, 2 * nbytes digits) ->
 * wire bytes, low byte first: 56 34 12 00 00 00. EST_ERR_INVALID for a
 * wrong length or a non-digit. */
est_err cn_address_parse(const char *digits, size_t nbytes, uint8_t *address);

/* The inverse: wire bytes -> digits, NUL-terminated; out holds
 * 2 * nbytes + 1 chars. A nibble above 9 prints as a hex letter (AA). */
void cn_address_format(const uint8_t *address, size_t nbytes, char *out);

/* ============================ DL/T 645 ===================================== */

#define DLT645_ADDRESS_LEN 6
#define DLT645_DATA_OFFSET 0x33 /* every DATA byte is sent +0x33 */
/* Largest frame a build function writes: preamble + 12 + L. */
#define DLT645_FRAME_MAX (CN_MAX_PREAMBLE + 12 + CN_MAX_DATA)

/* Function codes (control code D4..D0) of the requests used here. */
#define DLT645_2007_READ 0x11
#define DLT645_2007_READ_ADDRESS 0x13
#define DLT645_1997_READ 0x01

/* Error byte of an abnormal DL/T 645-2007 reply (C = request | 0xC0). */
enum dlt645_error_bits {
    DLT645_ERR_OTHER = 1u << 0,
    DLT645_ERR_NO_DATA = 1u << 1,      /* no such data identifier */
    DLT645_ERR_UNAUTHORIZED = 1u << 2, /* password wrong / not authorised */
    DLT645_ERR_BAUD = 1u << 3,         /* baud rate cannot be changed */
    DLT645_ERR_YEAR_ZONES = 1u << 4,
    DLT645_ERR_DAY_PERIODS = 1u << 5,
    DLT645_ERR_TARIFFS = 1u << 6,
};

enum dlt645_variant {
    DLT645_2007, /* 4-byte DI, read C=11 -> 91 / D1 */
    DLT645_1997, /* 2-byte DI, read C=01 -> 81 / C1 */
};

struct dlt645_options {
    enum dlt645_variant variant;
    unsigned preamble_count; /* FE bytes before each request, 0..CN_MAX_PREAMBLE */
};

/* 2007, 4 FE bytes (what most meters and hand-held readers send). */
void dlt645_options_init(struct dlt645_options *options);

/* One frame as received; data already has 0x33 taken off. */
struct dlt645_frame {
    uint8_t address[DLT645_ADDRESS_LEN]; /* wire order, low byte first */
    uint8_t control;
    uint8_t length;
    uint8_t data[CN_MAX_DATA];
};

/* Writes one frame (preamble, 68 A 68 C L DATA+0x33 CS 16) to out.
 * EST_ERR_RANGE if it does not fit in cap, EST_ERR_INVALID for len > 255
 * or too many preamble bytes. */
est_err dlt645_build_frame(const struct dlt645_options *options,
                           const uint8_t address[DLT645_ADDRESS_LEN], uint8_t control,
                           const uint8_t *data, size_t len, uint8_t *out, size_t cap,
                           size_t *out_len);

/* A read request for data identifier di (2007: DI3 DI2 DI1 DI0 as
 * 0xDI3DI2DI1DI0, e.g. 0x00010000; 1997: 0xDI1DI0, e.g. 0x9010), DI0 first
 * on the wire. EST_ERR_INVALID for a 1997 di above 0xFFFF. */
est_err dlt645_build_read(const struct dlt645_options *options,
                          const uint8_t address[DLT645_ADDRESS_LEN], uint32_t di, uint8_t *out,
                          size_t cap, size_t *out_len);

/* The read-address broadcast (2007: address AA x6, C=13, L=0). Only safe
 * with one meter on the bus. */
est_err dlt645_build_read_address(const struct dlt645_options *options, uint8_t *out, size_t cap,
                                  size_t *out_len);

/* Finds the first complete frame in buf[0..len) (see struct cn_scan). On
 * CN_SCAN_FRAME, *frame holds it. Requests and replies alike. */
void dlt645_scan(const uint8_t *buf, size_t len, struct dlt645_frame *frame,
                 struct cn_scan *scan);

/* A read reply, checked against the request. */
struct dlt645_reply {
    bool abnormal;        /* C had D6 set */
    uint8_t error;        /* abnormal: the error byte (enum dlt645_error_bits for 2007) */
    bool follows;         /* C had D5 set: the value continues in another frame */
    const uint8_t *value; /* normal: the bytes after the DI echo, inside the frame */
    size_t value_len;
};

/* Checks frame as the reply to a read of di from address (NULL: any
 * address): reply direction, function, address, DI echo. EST_OK for a
 * normal reply, EST_ERR_EXCEPTION for an abnormal one (reply->error set),
 * EST_ERR_PROTOCOL for anything else (a request, another meter, another
 * DI, a short frame). */
est_err dlt645_parse_read_reply(const struct dlt645_options *options,
                                const struct dlt645_frame *frame,
                                const uint8_t address[DLT645_ADDRESS_LEN], uint32_t di,
                                struct dlt645_reply *reply);

/* The reply to dlt645_build_read_address (C=93, L=6, DATA = the address).
 * EST_ERR_EXCEPTION for an abnormal reply, EST_ERR_PROTOCOL otherwise. */
est_err dlt645_parse_address_reply(const struct dlt645_frame *frame,
                                   uint8_t address[DLT645_ADDRESS_LEN]);

/* A data item as a row of data a model file can carry. */
enum dlt645_encoding {
    DLT645_BCD,  /* digits, decimals, optional sign bit */
    DLT645_WORD, /* bits, low byte first (status words): value = the integer */
};

struct dlt645_point {
    enum dlt645_variant variant;
    uint32_t di;
    enum dlt645_encoding encoding;
    uint8_t nbytes;       /* value bytes after the DI echo */
    uint8_t decimals;     /* BCD: digits after the point (XXXXXX.XX -> 2) */
    bool sign_bit;        /* BCD: top bit of the last byte is the sign */
    const char *quantity; /* SPEC quantity name, or a plain name for extras */
    double scale;         /* SPEC value = meter value * scale (kW -> W: 1000) */
};

/* The built-in table of common data items, both variants. */
size_t dlt645_point_count(void);
const struct dlt645_point *dlt645_point_at(size_t index);
/* NULL when the table has no such item. */
const struct dlt645_point *dlt645_point_find(enum dlt645_variant variant, uint32_t di);

/* Decodes a reply's value bytes into SPEC units. A power-of-ten scale is
 * applied to the decimal exactly (XX.XXXX kW -> W keeps one decimal).
 * EST_ERR_PROTOCOL for a wrong length or a bad BCD digit. */
est_err dlt645_decode_point(const struct dlt645_point *point, const uint8_t *value, size_t len,
                            double *out);

/* The inverse, for simulators: value in SPEC units -> point->nbytes bytes.
 * EST_ERR_RANGE when it does not fit. */
est_err dlt645_encode_point(const struct dlt645_point *point, double value, uint8_t *out);

/* Bit 4 of run status word 1 (DI 04000501): active power reverse. */
#define DLT645_STATUS1_POWER_REVERSE (1u << 4)

/* ============================ CJ/T 188 ===================================== */

#define CJT188_ADDRESS_LEN 7
#define CJT188_FRAME_MAX (CN_MAX_PREAMBLE + 13 + CN_MAX_DATA)

/* Meter type byte T. */
enum cjt188_meter_type {
    CJT188_COLD_WATER = 0x10,
    CJT188_HOT_WATER = 0x11,
    CJT188_DRINKING_WATER = 0x12,
    CJT188_RECLAIMED_WATER = 0x13,
    CJT188_HEAT = 0x20,
    CJT188_COOLING = 0x21,
    CJT188_GAS = 0x30,
    CJT188_ANY_TYPE = 0xAA, /* wildcard type for broadcasts */
};

/* Control codes of the requests used here (reply = request | 0x80). */
#define CJT188_READ 0x01
#define CJT188_READ_ADDRESS 0x03
#define CJT188_WRITE 0x04

#define CJT188_DI_READ_METER 0x901F  /* current and settlement-day volume, time, status */
#define CJT188_DI_VALVE 0xA017       /* valve control */
#define CJT188_DI_READ_ADDRESS 0x810A

/* How a two-byte DI goes on the wire. CJ/T 188 names the bytes DI0 DI1;
 * meters disagree on which of 90/1F is DI0. */
enum cjt188_di_order {
    CJT188_DI_LOW_FIRST,  /* 901F sent 1F 90 (most meters) */
    CJT188_DI_HIGH_FIRST, /* 901F sent 90 1F */
};

/* Where the valve and battery bits sit in status byte ST0. */
enum cjt188_status_layout {
    CJT188_STATUS_LOW_BITS,  /* D0-D1 valve 00 open, 01 closed, 11 abnormal; D2 battery low */
    CJT188_STATUS_HIGH_BITS, /* D6-D7 valve 00 open, 01 closed, 11 abnormal; D5 battery low */
};

/* A unit byte and what one unit is in m3 (0: not a volume). */
struct cjt188_unit {
    uint8_t code;
    const char *name;
    double m3_per_unit;
};

struct cjt188_options {
    unsigned preamble_count;           /* FE bytes before each request */
    enum cjt188_di_order di_order;
    enum cjt188_status_layout status_layout;
    uint8_t valve_open_code;           /* 0x55 */
    uint8_t valve_close_code;          /* 0x99 */
    uint16_t read_address_di;          /* 0x810A (unverified) */
    const struct cjt188_unit *units;   /* NULL: the built-in table */
    size_t nunits;
};

/* 2 FE bytes, DI low byte first, status in the low bits, 55/99, 810A,
 * built-in units. */
void cjt188_options_init(struct cjt188_options *options);

/* The built-in unit table: 0x2C m3 (in published frames) and 0x29 L; the
 * others are unverified (docs/chinese-meters.md). */
size_t cjt188_unit_count(void);
const struct cjt188_unit *cjt188_unit_at(size_t index);
/* The options' table (or the built-in one); NULL for an unknown code. */
const struct cjt188_unit *cjt188_unit_find(const struct cjt188_options *options, uint8_t code);

struct cjt188_frame {
    uint8_t type;
    uint8_t address[CJT188_ADDRESS_LEN]; /* wire order, low byte first */
    uint8_t control;
    uint8_t length;
    uint8_t data[CN_MAX_DATA];
};

/* Writes one frame: preamble, 68 T A0..A6 C L DATA CS 16. Errors as
 * dlt645_build_frame. */
est_err cjt188_build_frame(const struct cjt188_options *options, uint8_t type,
                           const uint8_t address[CJT188_ADDRESS_LEN], uint8_t control,
                           const uint8_t *data, size_t len, uint8_t *out, size_t cap,
                           size_t *out_len);

/* Read data: C=01, DATA = DI SER. */
est_err cjt188_build_read(const struct cjt188_options *options, uint8_t type,
                          const uint8_t address[CJT188_ADDRESS_LEN], uint16_t di, uint8_t ser,
                          uint8_t *out, size_t cap, size_t *out_len);

/* Valve control: C=04, DATA = A017 SER open/close code. */
est_err cjt188_build_valve(const struct cjt188_options *options, uint8_t type,
                           const uint8_t address[CJT188_ADDRESS_LEN], bool open, uint8_t ser,
                           uint8_t *out, size_t cap, size_t *out_len);

/* Read address to the broadcast address AA x7: C=03, DATA = 810A SER. */
est_err cjt188_build_read_address(const struct cjt188_options *options, uint8_t type,
                                  uint8_t ser, uint8_t *out, size_t cap, size_t *out_len);

/* As dlt645_scan. */
void cjt188_scan(const uint8_t *buf, size_t len, struct cjt188_frame *frame,
                 struct cn_scan *scan);

enum cjt188_valve { CJT188_VALVE_OPEN, CJT188_VALVE_CLOSED, CJT188_VALVE_ABNORMAL };

struct cjt188_status {
    enum cjt188_valve valve;
    bool battery_low;
    uint8_t raw[2]; /* ST0 ST1 as sent (ST1 is vendor-defined) */
};

/* ST bytes <-> status, in the options' layout. Decoding 10 in the valve
 * bits (not defined) gives abnormal. */
void cjt188_status_decode(const struct cjt188_options *options, const uint8_t st[2],
                          struct cjt188_status *status);
void cjt188_status_encode(const struct cjt188_options *options, enum cjt188_valve valve,
                          bool battery_low, uint8_t st[2]);

/* Real time ss mm hh DD MM YY YY (BCD, as the 901F reply carries it). */
struct cjt188_time {
    bool valid; /* false when a field is not BCD or out of range */
    uint16_t year;
    uint8_t month, day, hour, minute, second;
};

/* One volume: the BCD number, its unit byte and, for a known volume unit,
 * the value in m3. */
struct cjt188_volume {
    double value;   /* XXXXXX.XX in the meter's unit */
    uint8_t unit;
    bool known;     /* unit is in the table and a volume */
    double m3;      /* value * m3_per_unit when known */
};

/* The 901F reply of a water meter. */
struct cjt188_meter_data {
    uint8_t ser;
    struct cjt188_volume current;    /* current cumulative volume */
    struct cjt188_volume settlement; /* cumulative volume on the settlement day */
    struct cjt188_time time;
    struct cjt188_status status;
};

/* A reply with D6 set: what it carried. */
struct cjt188_abnormal {
    bool has_ser, has_status;
    uint8_t ser;
    struct cjt188_status status;
};

/* Checks frame as the 901F reply to a read from (type, address) with
 * sequence byte ser (address NULL: any; type CJT188_ANY_TYPE: any) and
 * decodes it. EST_OK; EST_ERR_EXCEPTION for an abnormal reply (*abnormal
 * filled when not NULL); EST_ERR_NOTFOUND when everything decoded but a
 * unit byte is unknown (the volume's known is false); EST_ERR_PROTOCOL
 * otherwise (wrong direction, meter, DI, SER, length or BCD digit). */
est_err cjt188_parse_read_reply(const struct cjt188_options *options,
                                const struct cjt188_frame *frame, uint8_t type,
                                const uint8_t address[CJT188_ADDRESS_LEN], uint8_t ser,
                                struct cjt188_meter_data *data,
                                struct cjt188_abnormal *abnormal);

/* The reply to cjt188_build_valve: C=84, DATA = A017 SER ST0 ST1 (a reply
 * without ST is accepted; status->raw is then 0 and the valve state is
 * only what was asked: read 901F before believing it). EST_OK,
 * EST_ERR_EXCEPTION, EST_ERR_PROTOCOL as above. *has_status tells which. */
est_err cjt188_parse_valve_reply(const struct cjt188_options *options,
                                 const struct cjt188_frame *frame, uint8_t type,
                                 const uint8_t address[CJT188_ADDRESS_LEN], uint8_t ser,
                                 struct cjt188_status *status, bool *has_status,
                                 struct cjt188_abnormal *abnormal);

/* The reply to cjt188_build_read_address: C=83, DATA = DI SER; the meter's
 * type and address are those of the frame. */
est_err cjt188_parse_address_reply(const struct cjt188_options *options,
                                   const struct cjt188_frame *frame, uint8_t ser, uint8_t *type,
                                   uint8_t address[CJT188_ADDRESS_LEN],
                                   struct cjt188_abnormal *abnormal);

#endif
