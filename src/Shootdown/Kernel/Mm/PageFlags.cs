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
    /// <summary>In the buddy allocator (PageBuddy).</summary>
    Buddy = 1 << 8,
    /// <summary>Taken off the LRU by isolate_lru_pages; owned by one reclaimer.</summary>
    Isolated = 1 << 9,
    /// <summary>PG_reclaim: reclaim met the page dirty or under writeback; rotate it to the inactive tail when writeback ends.</summary>
    Reclaim = 1 << 10,
}

/// <summary>x86 PTE bits as the simulator stores them: flags in the low bits, the frame above.</summary>
public static class Pte
{
    public const uint Present = 1;
    public const uint Write = 2;
    public const uint Accessed = 4;
    public const uint Dirty = 8;
    public const int FrameShift = 4;

    public static uint Make(int frame, uint flags) => ((uint)frame << FrameShift) | flags;

    public static int Frame(uint pte) => (int)(pte >> FrameShift);

    public static bool IsPresent(uint pte) => (pte & Present) != 0;

    public static bool IsYoung(uint pte) => (pte & Accessed) != 0;

    public static bool IsDirty(uint pte) => (pte & Dirty) != 0;

    public static bool IsWrite(uint pte) => (pte & Write) != 0;
}
