using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Arch;

/// <summary>
/// struct flush_tlb_info: what a TLB flush request asks of each CPU — data, not code. One page is
/// [Start, Start + 1), a range is [Start, End), everything is End = <see cref="FlushAll"/>; a PFN
/// list (the RFC's batch) is <see cref="Pfns"/>. <see cref="FlushMm"/> = null means "whatever mm
/// the receiver runs" (4.3's batched flush passes no mm).
/// </summary>
public sealed class FlushTlbInfo
{
    /// <summary>TLB_FLUSH_ALL.</summary>
    public const long FlushAll = long.MaxValue;

    public MmStruct? FlushMm;
    public long Start;
    public long End;
    public int[]? Pfns;
    public int NrPfns;

    public bool IsFull => End == FlushAll;

    /// <summary>Pages asked for (-1 for a full flush), as tlb:tlb_flush prints them.</summary>
    public long Pages => IsFull ? -1 : Pfns is not null ? NrPfns : End - Start;

    public FlushTlbInfo Set(MmStruct? mm, long start, long end)
    {
        FlushMm = mm;
        Start = start;
        End = end;
        Pfns = null;
        NrPfns = 0;
        return this;
    }
}

/// <summary>
/// A function run on each target CPU by smp_call_function_many (the IPI handler). Returns the
/// handler's own cost on <paramref name="receiver"/>, which takes the interrupt at
/// <paramref name="t"/>; interrupt entry and exit are the caller's.
/// </summary>
public delegate long SmpCallFunc(Cpu receiver, long t, FlushTlbInfo info);

/// <summary>
/// The architecture's TLB layer (arch/*/mm/tlb.c and asm/mmu_context.h, asm/tlbflush.h): what
/// generic mm code and the flush policies may call. Generic code never says INVLPG or CR3; x86
/// implements this with IPIs now, arm64 (broadcast TLBI + DSB) and RISC-V (SBI remote fences) can
/// implement it later. The lazy-TLB state machine (switch_mm, enter_lazy_tlb, leave_mm) lives in
/// the implementation, in one place.
/// </summary>
public interface IArchTlb
{
    string Name { get; }

    /// <summary>context_switch's mm part: switch_mm to <paramref name="next"/>'s mm, or enter_lazy_tlb for a kernel thread (mm = null).</summary>
    void SwitchMm(Exec ex, SimTask next);

    /// <summary>enter_lazy_tlb: a kernel thread (or the idle task) keeps the previous mm loaded, lazily.</summary>
    void EnterLazyTlb(Cpu cpu);

    /// <summary>leave_mm: stop borrowing the lazily held mm (switch to init_mm), leaving its mm_cpumask.</summary>
    void LeaveMm(Cpu cpu);

    /// <summary>flush_tlb_page: after one PTE of <paramref name="mm"/> changed (ptep_clear_flush).</summary>
    void FlushTlbPage(Exec ex, MmStruct mm, long vpn);

    /// <summary>flush_tlb_mm_range over [start, end) of <paramref name="mm"/> (end = <see cref="FlushTlbInfo.FlushAll"/> for all).</summary>
    void FlushTlbMmRange(Exec ex, MmStruct mm, long start, long end);

    /// <summary>flush_tlb_mm: every entry of <paramref name="mm"/> on every CPU.</summary>
    void FlushTlbMm(Exec ex, MmStruct mm);

    /// <summary>flush_tlb_others: the request on every CPU of <paramref name="mask"/> but this one, waiting for all.</summary>
    void FlushTlbOthers(Exec ex, Cpumask mask, FlushTlbInfo info);

    /// <summary>arch_tlbbatch_add_mm (4.13, e73ad5ff2f76): remember that a deferred flush must reach the CPUs of <paramref name="mm"/>.</summary>
    void ArchTlbbatchAddMm(TlbUnmapBatch batch, MmStruct mm);

    /// <summary>arch_tlbbatch_flush (4.13): flush everything the batch owes, here and on every other CPU of its mask.</summary>
    void ArchTlbbatchFlush(Exec ex, TlbUnmapBatch batch);

    /// <summary>flush_tlb_local (4.3's asm/tlbflush.h): a full flush of this CPU's TLB, counted as an irq_tlb_count. Returns its cost.</summary>
    long FlushTlbLocal(Cpu cpu);

    /// <summary>flush_local_tlb_addr (RFC v1, April 2015): invalidate one linear address on this CPU (x86: INVLPG). Returns its cost.</summary>
    long FlushLocalTlbAddr(Cpu cpu, long addr);

    /// <summary>smp_call_function_many(mask, func, info, wait=1): run <paramref name="func"/> on every other CPU of the mask and wait.</summary>
    void SmpCallFunctionMany(Exec ex, Cpumask mask, SmpCallFunc func, FlushTlbInfo info);
}
