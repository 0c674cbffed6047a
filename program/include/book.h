/* The book: position slots and, per side, a crit-bit tree of the live
 * positions ordered by (funding-free liquidation key, slot), with subtree
 * sums at every inner node.  docs/risk-engine.md describes the layout;
 * perpkit.book (Python) reads and models it.
 *
 * Tree references are u32: 0 is empty, 1..capacity an inner node
 * (nodes[ref - 1]), BOOK_LEAF | slot a position.  Pure: no syscalls. */
#ifndef PERPS_BOOK_H
#define PERPS_BOOK_H

#include "math.h"
#include "perps_idl.h"
#include "risk.h"

#define BOOK_LEAF 0x80000000u
#define BOOK_NONE 0u
#define BOOK_KEY_BITS 160u /* 128-bit key, then the 32-bit slot */

_Static_assert(sizeof(PerpsBook) + 8 == PERPS_BOOK_HEADER_SIZE, "book header size");
_Static_assert(sizeof(PerpsPositionSlot) == PERPS_BOOK_SLOT_SIZE, "slot size");
_Static_assert(sizeof(PerpsTreeNode) == PERPS_BOOK_NODE_SIZE, "node size");

typedef struct {
  PerpsBook *header;
  PerpsPositionSlot *slots;
  PerpsTreeNode *nodes;
  uint32_t capacity;
} Book;

typedef struct {
  uint32_t count;
  uint64_t collateral;
  uint64_t size;
  u128 size_entry;
  i128 size_funding;
} BookSums;

static inline bool book_is_leaf(uint32_t ref) { return (ref & BOOK_LEAF) != 0; }
static inline uint32_t book_leaf_slot(uint32_t ref) { return ref & ~BOOK_LEAF; }
static inline PerpsTreeNode *book_node(const Book *b, uint32_t ref) { return &b->nodes[ref - 1]; }

/* Bytes of a book account of `capacity` positions. */
static inline uint64_t book_size(uint64_t capacity) {
  return PERPS_BOOK_HEADER_SIZE + capacity * (PERPS_BOOK_SLOT_SIZE + PERPS_BOOK_NODE_SIZE);
}
/* The key in unsigned order (sign bit flipped). */
static inline u128 book_ordered(i128 key) { return (u128)key ^ ((u128)1 << 127); }
/* Bit `bit` (0 = most significant) of the composite (key, slot). */
static inline uint32_t book_bit(u128 ordered_key, uint32_t slot, uint32_t bit) {
  if (bit < 128) return pk_bit128(ordered_key, bit);
  return (slot >> (31 - (bit - 128))) & 1;
}
/* Most significant bit where two composites differ; BOOK_KEY_BITS if equal. */
uint32_t book_crit_bit(const u128 *a_key, uint32_t a_slot, const u128 *b_key, uint32_t b_slot);

/* A view of `data` (after the 8-byte discriminator) for a book of `capacity`. */
void book_view(uint8_t *data, uint32_t capacity, Book *out);
void book_init(Book *b, const SolPubkey *market, uint32_t capacity);

/* A free slot (BookFull when there is none) and its release (generation + 1). */
PerpsResult book_alloc_slot(Book *b, uint32_t *slot);
void book_free_slot(Book *b, uint32_t slot);

/* Insert the open slot into its side's tree (its key, side and terms set). */
PerpsResult book_insert(Book *b, uint32_t slot);
/* Remove a live slot from its side's tree. */
PerpsResult book_remove(Book *b, uint32_t slot);
/* True when the slot's position is reachable from its side's root. */
bool book_is_live(const Book *b, uint32_t slot);

/* The most exposed live position of `side` (the one liquidated first: the
 * highest key for longs, the lowest for shorts), or UINT32_MAX if the side
 * is empty.  One walk down the tree. */
uint32_t book_extreme(const Book *b, uint8_t side);

/* Sums of the subtree at `ref` (a leaf's own terms for a leaf). */
void book_sums(const Book *b, uint32_t ref, BookSums *out);

/* A threshold in composite order: cut the leaves strictly above it
 * (longs: key > T is (T, 0xFFFFFFFF) < composite) or strictly below it
 * (shorts: key < T is composite < (T, 0)). */
typedef struct {
  u128 key; /* ordered (book_ordered) */
  uint32_t slot;
  bool above;
} BookCut;

/* Cut every live position of `side` beyond the threshold: whole subtrees
 * along the threshold's path go onto the garbage list with their sums; *cut
 * receives the total.  Cost: one path, whatever the number cut. */
PerpsResult book_cut(Book *b, uint8_t side, const BookCut *cut, BookSums *total);
/* Free up to `max_items` inner nodes and position slots from the garbage
 * list; *freed counts them.  A freed slot's generation moves on. */
void book_collect_garbage(Book *b, uint32_t max_items, uint32_t *freed);

#endif
