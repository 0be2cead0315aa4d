namespace Shootdown.Kernel.Mm;

/// <summary>struct page flags (include/linux/page-flags.h) that the simulator models.</summary>
[Flags]
public enum PageFlags : ushort
{
    None = 0,
    Locked = 1 << 0,
    Dirty = 1 << 1,
    Writeback = 1 << 2,
    Referenced = 1 << 3,
    Active = 1 << 4,
    Lru = 1 << 5,
    Uptodate = 1 << 6,
    Unevictable = 1 << 7,
    /// <summary>PageBuddy: the first page of a free block in the buddy allocator (its order in page->index here).</summary>
    Buddy = 1 << 8,
    /// <summary>Taken off the LRU by isolate_lru_pages; owned by one reclaimer.</summary>
    Isolated = 1 << 9,
    /// <summary>PG_reclaim: reclaim met the page dirty or under writeback; rotate it to the inactive tail when writeback ends.</summary>
    Reclaim = 1 << 10,
    /// <summary>
    /// Free: in the buddy allocator (the head of a block or inside one) or on a per-CPU list. Not a
    /// kernel flag — the kernel knows a free page by its zero reference count; the oracle asks it.
    /// </summary>
    Free = 1 << 11,
    /// <summary>
    /// Truncated while it waited in a CPU's lru_add pagevec: that pagevec holds its last reference,
    /// and its drain frees it. Not a kernel flag — the kernel knows it by its reference count.
    /// </summary>
    Orphaned = 1 << 12,
    /// <summary>
    /// PG_readahead: the page whose read starts the next asynchronous readahead (mm/readahead.c
    /// marks the first page of the window's lookahead part). Linux 4.0 keeps it in PG_reclaim's
    /// bit (PAGEFLAG(Readahead, reclaim)), which only pages under writeback use otherwise; the
    /// model gives it its own bit, since no path here reads one for the other.
    /// </summary>
    Readahead = 1 << 13,
}

/// <summary>x86 PTE bits as the simulator stores them: flags in the low bits, the frame above.</summary>
public static class Pte
{
    /// <summary>PTEs in one 64-byte cache line (8-byte x86-64 PTEs).</summary>
    public const int PtesPerLine = 8;

    public const uint Present = 1;
    public const uint Write = 2;
    public const uint Accessed = 4;
    public const uint Dirty = 8;

    /// <summary>
    /// _PAGE_PROTNONE (x86: the global bit with _PAGE_PRESENT clear): a NUMA-hinting PTE. The
    /// hardware sees no PTE and faults; the kernel still sees the page mapped (pte_present), with
    /// its write and dirty bits kept for when the protection is restored.
    /// </summary>
    public const uint ProtNone = 16;

    /// <summary>
    /// A migration entry (a swap-type entry, SWP_MIGRATION_READ/WRITE): not present; names the frame
    /// being migrated and keeps the write and dirty bits for remove_migration_ptes.
    /// </summary>
    public const uint Migration = 32;

    public const int FrameShift = 6;

    public static uint Make(int frame, uint flags) => ((uint)frame << FrameShift) | flags;

    public static int Frame(uint pte) => (int)(pte >> FrameShift);

    /// <summary>The hardware's present bit: a walk finds a usable translation.</summary>
    public static bool IsPresent(uint pte) => (pte & Present) != 0;

    /// <summary>pte_present as the kernel means it: present or PROT_NONE (NUMA hinting); the page is mapped.</summary>
    public static bool IsMapped(uint pte) => (pte & (Present | ProtNone)) != 0;

    public static bool IsProtNone(uint pte) => (pte & ProtNone) != 0;

    /// <summary>is_migration_entry.</summary>
    public static bool IsMigration(uint pte) => (pte & Migration) != 0;

    /// <summary>
    /// pte_accessible (x86): may some CPU have cached this PTE? A present one, yes; a PROT_NONE one
    /// only while a flush of its mm is pending (mm_tlb_flush_pending), i.e. before the flush of the
    /// change_prot_numa that made it PROT_NONE completed.
    /// </summary>
    public static bool IsAccessible(uint pte, bool flushPending) => IsPresent(pte) || (IsProtNone(pte) && flushPending);

    public static bool IsYoung(uint pte) => (pte & Accessed) != 0;

    public static bool IsDirty(uint pte) => (pte & Dirty) != 0;

    public static bool IsWrite(uint pte) => (pte & Write) != 0;
}
