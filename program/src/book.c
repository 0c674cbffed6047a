/* The book's crit-bit trees: see book.h and docs/risk-engine.md. */
#include "book.h"

static uint32_t clz128(u128 v) {
  uint64_t hi = (uint64_t)(v >> 64);
  return hi ? pk_clz64(hi) : 64 + pk_clz64((uint64_t)v);
}

uint32_t book_crit_bit(const u128 *a_key, uint32_t a_slot, const u128 *b_key, uint32_t b_slot) {
  u128 diff = *a_key ^ *b_key;
  if (diff) return clz128(diff);
  uint32_t s = a_slot ^ b_slot;
  if (s) return 128 + pk_clz64((uint64_t)s) - 32;
  return BOOK_KEY_BITS;
}

void book_view(uint8_t *data, uint32_t capacity, Book *out) {
  out->header = (PerpsBook *)data;
  out->slots = (PerpsPositionSlot *)(data + sizeof(PerpsBook));
  out->nodes = (PerpsTreeNode *)((uint8_t *)out->slots + (uint64_t)capacity * sizeof(PerpsPositionSlot));
  out->capacity = capacity;
}

void book_init(Book *b, const SolPubkey *market, uint32_t capacity) {
  b->header->market = *market;
  b->header->capacity = capacity;
}

PerpsResult book_alloc_slot(Book *b, uint32_t *slot) {
  PerpsBook *h = b->header;
  uint32_t s;
  if (h->free_slot) {
    s = h->free_slot - 1;
    h->free_slot = b->slots[s].next;
  } else if (h->slots_used < b->capacity) {
    s = h->slots_used++;
  } else {
    return PERPS_ERR_BOOK_FULL;
  }
  b->slots[s].next = 0;
  *slot = s;
  return 0;
}

void book_free_slot(Book *b, uint32_t slot) {
  PerpsPositionSlot *p = &b->slots[slot];
  p->status = PERPS_SLOT_FREE;
  p->generation += 1;
  p->next = b->header->free_slot;
  b->header->free_slot = slot + 1;
}

static PerpsResult alloc_node(Book *b, uint32_t *ref) {
  PerpsBook *h = b->header;
  uint32_t r;
  if (h->free_node) {
    r = h->free_node;
    h->free_node = book_node(b, r)->children[0];
  } else if (h->nodes_used < b->capacity) {
    r = ++h->nodes_used;
  } else {
    return PERPS_ERR_BOOK_FULL;
  }
  *ref = r;
  return 0;
}

static void free_node(Book *b, uint32_t ref) {
  book_node(b, ref)->children[0] = b->header->free_node;
  b->header->free_node = ref;
}

static void leaf_sums(const PerpsPositionSlot *p, BookSums *out) {
  out->count = 1;
  out->collateral = p->collateral;
  out->size = p->size;
  pk_mul_64(p->size, p->entry_price, &out->size_entry);
  /* |funding_at_open| * size fits: checked when the position was opened */
  pk_mul_i128_64(pk_load_i128(&p->funding_at_open), p->size, &out->size_funding);
}

void book_sums(const Book *b, uint32_t ref, BookSums *out) {
  if (book_is_leaf(ref)) {
    leaf_sums(&b->slots[book_leaf_slot(ref)], out);
    return;
  }
  const PerpsTreeNode *n = book_node(b, ref);
  out->count = n->count;
  out->collateral = n->collateral;
  out->size = n->size;
  out->size_entry = pk_load_u128(&n->size_entry);
  out->size_funding = pk_load_i128(&n->size_funding);
}

static void store_sums(PerpsTreeNode *n, const BookSums *s) {
  n->count = s->count;
  n->collateral = s->collateral;
  n->size = s->size;
  pk_store_u128(&n->size_entry, s->size_entry);
  pk_store_i128(&n->size_funding, s->size_funding);
}

static PerpsResult add_sums(BookSums *acc, const BookSums *d) {
  if (__builtin_add_overflow(acc->collateral, d->collateral, &acc->collateral) ||
      __builtin_add_overflow(acc->size, d->size, &acc->size) || acc->size_entry + d->size_entry < acc->size_entry ||
      !pk_add_i128(acc->size_funding, d->size_funding, &acc->size_funding))
    return PERPS_ERR_ARITHMETIC_OVERFLOW;
  acc->count += d->count;
  acc->size_entry += d->size_entry;
  return 0;
}

/* Add d to (or take it from) the sums of inner node `ref`; adding is checked,
 * taking away cannot underflow (d is part of the node's subtree). */
static PerpsResult adjust(const Book *b, uint32_t ref, const BookSums *d, bool add) {
  BookSums s;
  book_sums(b, ref, &s);
  if (add) {
    TRY(add_sums(&s, d));
  } else {
    s.count -= d->count;
    s.collateral -= d->collateral;
    s.size -= d->size;
    s.size_entry -= d->size_entry;
    s.size_funding -= d->size_funding;
  }
  store_sums(book_node(b, ref), &s);
  return 0;
}

/* The leaf that the composite's bits lead to (the best match). */
static uint32_t walk(const Book *b, uint32_t ref, u128 key, uint32_t slot) {
  while (ref != BOOK_NONE && !book_is_leaf(ref)) {
    const PerpsTreeNode *n = book_node(b, ref);
    ref = n->children[book_bit(key, slot, n->crit)];
  }
  return ref;
}

PerpsResult book_insert(Book *b, uint32_t slot) {
  PerpsPositionSlot *p = &b->slots[slot];
  uint32_t *root = &b->header->roots[p->side];
  u128 key = book_ordered(pk_load_i128(&p->key));
  BookSums mine;
  leaf_sums(p, &mine);
  uint32_t leaf = BOOK_LEAF | slot;
  if (*root == BOOK_NONE) {
    *root = leaf;
    b->header->counts[p->side] += 1;
    return 0;
  }
  uint32_t best = book_leaf_slot(walk(b, *root, key, slot));
  u128 best_key = book_ordered(pk_load_i128(&b->slots[best].key));
  uint32_t crit = book_crit_bit(&key, slot, &best_key, best);
  if (crit == BOOK_KEY_BITS) return PERPS_ERR_INVALID_ACCOUNT_DATA; /* already in the tree */

  uint32_t fresh;
  TRY(alloc_node(b, &fresh));
  /* Descend while the nodes branch above the new crit bit; they all gain the leaf. */
  uint32_t *link = root;
  while (!book_is_leaf(*link) && book_node(b, *link)->crit < crit) {
    TRY(adjust(b, *link, &mine, true));
    link = &book_node(b, *link)->children[book_bit(key, slot, book_node(b, *link)->crit)];
  }
  BookSums below;
  book_sums(b, *link, &below);
  TRY(add_sums(&below, &mine));
  PerpsTreeNode *m = book_node(b, fresh);
  uint32_t dir = book_bit(key, slot, crit);
  m->crit = (uint16_t)crit;
  m->padding = 0;
  m->children[dir] = leaf;
  m->children[1 - dir] = *link;
  store_sums(m, &below);
  *link = fresh;
  b->header->counts[p->side] += 1;
  return 0;
}

bool book_is_live(const Book *b, uint32_t slot) {
  const PerpsPositionSlot *p = &b->slots[slot];
  if (p->status != PERPS_SLOT_OPEN || p->side > PERPS_SIDE_SHORT) return false;
  u128 key = book_ordered(pk_load_i128(&p->key));
  return walk(b, b->header->roots[p->side], key, slot) == (BOOK_LEAF | slot);
}

PerpsResult book_remove(Book *b, uint32_t slot) {
  if (!book_is_live(b, slot)) return PERPS_ERR_POSITION_LIQUIDATED;
  PerpsPositionSlot *p = &b->slots[slot];
  uint32_t *root = &b->header->roots[p->side];
  u128 key = book_ordered(pk_load_i128(&p->key));
  BookSums mine;
  leaf_sums(p, &mine);
  uint32_t leaf = BOOK_LEAF | slot;
  if (*root == leaf) {
    *root = BOOK_NONE;
  } else {
    /* Every node above the leaf's parent loses the leaf; the parent goes and
     * the leaf's sibling takes its place. */
    uint32_t *link = root;
    for (;;) {
      PerpsTreeNode *n = book_node(b, *link);
      uint32_t dir = book_bit(key, slot, n->crit);
      if (n->children[dir] == leaf) {
        uint32_t parent = *link;
        *link = n->children[1 - dir];
        free_node(b, parent);
        break;
      }
      adjust(b, *link, &mine, false);
      link = &n->children[dir];
    }
  }
  b->header->counts[p->side] -= 1;
  return 0;
}

uint32_t book_extreme(const Book *b, uint8_t side) {
  uint32_t ref = b->header->roots[side];
  if (ref == BOOK_NONE) return UINT32_MAX;
  /* longs: the highest composite; shorts: the lowest */
  uint32_t dir = side == PERPS_SIDE_LONG ? 1 : 0;
  while (!book_is_leaf(ref)) ref = book_node(b, ref)->children[dir];
  return book_leaf_slot(ref);
}

/* -- liquidation: cutting along the threshold's path ----------------------- */

/* Push a cut subtree onto the garbage list (inner nodes link through their
 * count field, leaves through their slot's next field: both unused once cut). */
static void push_garbage(Book *b, uint32_t ref) {
  if (book_is_leaf(ref)) {
    b->slots[book_leaf_slot(ref)].next = b->header->garbage;
  } else {
    book_node(b, ref)->count = b->header->garbage;
  }
  b->header->garbage = ref;
}

static bool composite_above(const BookCut *cut, u128 key, uint32_t slot) {
  return key > cut->key || (key == cut->key && slot > cut->slot);
}

static bool composite_below(const BookCut *cut, u128 key, uint32_t slot) {
  return key < cut->key || (key == cut->key && slot < cut->slot);
}

/* Cut the subtree at *link; its sums go to the total. */
static PerpsResult cut_whole(Book *b, uint32_t *link, BookSums *total) {
  BookSums s;
  book_sums(b, *link, &s);
  TRY(add_sums(total, &s));
  push_garbage(b, *link);
  return 0;
}

PerpsResult book_cut(Book *b, uint8_t side, const BookCut *cut, BookSums *total) {
  uint32_t *root = &b->header->roots[side];
  *total = (BookSums){0};
  if (*root == BOOK_NONE) return 0;
  /* the leaf the threshold leads to, and the first bit where they differ */
  uint32_t best = book_leaf_slot(walk(b, *root, cut->key, cut->slot));
  u128 best_key = book_ordered(pk_load_i128(&b->slots[best].key));
  uint32_t d = book_crit_bit(&cut->key, cut->slot, &best_key, best);
  /* the liquidated side of a bit: 1 above the threshold, 0 below it */
  uint32_t gone = cut->above ? 1 : 0;

  uint32_t kept[BOOK_KEY_BITS];
  uint32_t *kept_link[BOOK_KEY_BITS];
  uint32_t depth = 0;
  uint32_t *link = root;
  for (;;) {
    uint32_t ref = *link;
    if (ref == BOOK_NONE) break;
    bool whole = book_is_leaf(ref) || book_node(b, ref)->crit > d;
    if (whole) {
      /* everything here is on one side of the threshold */
      bool liquidated;
      if (book_is_leaf(ref)) {
        uint32_t slot = book_leaf_slot(ref);
        u128 key = book_ordered(pk_load_i128(&b->slots[slot].key));
        liquidated = cut->above ? composite_above(cut, key, slot) : composite_below(cut, key, slot);
      } else {
        liquidated = book_bit(cut->key, cut->slot, d) != gone;
      }
      if (!liquidated) break;
      TRY(cut_whole(b, link, total));
      if (depth == 0) {
        *root = BOOK_NONE;
      } else {
        /* the last kept node loses this child: its other child replaces it */
        uint32_t parent = kept[--depth];
        *kept_link[depth] = book_node(b, parent)->children[1 - gone];
        free_node(b, parent);
      }
      break;
    }
    PerpsTreeNode *n = book_node(b, ref);
    if (book_bit(cut->key, cut->slot, n->crit) != gone) {
      /* the child on the liquidated side is wholly beyond the threshold */
      TRY(cut_whole(b, &n->children[gone], total));
      *link = n->children[1 - gone];
      free_node(b, ref);
    } else {
      /* the other child is wholly safe: keep this node and go on */
      kept[depth] = ref;
      kept_link[depth] = link;
      depth++;
      link = &n->children[gone];
    }
  }
  /* the kept nodes' sums, from the deepest up: each is the sum of its two
   * children, which are untouched subtrees or already recomputed */
  while (depth > 0) {
    PerpsTreeNode *n = book_node(b, kept[--depth]);
    BookSums left, right;
    book_sums(b, n->children[0], &left);
    book_sums(b, n->children[1], &right);
    TRY(add_sums(&left, &right));
    store_sums(n, &left);
  }
  b->header->counts[side] -= total->count;
  b->header->garbage_count += total->count;
  return 0;
}

void book_collect_garbage(Book *b, uint32_t max_items, uint32_t *freed) {
  PerpsBook *h = b->header;
  uint32_t done = 0;
  while (done < max_items && h->garbage != BOOK_NONE) {
    uint32_t ref = h->garbage;
    if (book_is_leaf(ref)) {
      uint32_t slot = book_leaf_slot(ref);
      h->garbage = b->slots[slot].next;
      book_free_slot(b, slot);
      h->garbage_count -= 1;
    } else {
      PerpsTreeNode *n = book_node(b, ref);
      h->garbage = n->count;
      uint32_t left = n->children[0], right = n->children[1];
      free_node(b, ref);
      push_garbage(b, left);
      push_garbage(b, right);
    }
    done++;
  }
  *freed = done;
}
