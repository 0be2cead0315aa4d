namespace Shootdown.Policies;

/// <summary>
/// Linux 4.0: try_to_unmap_one clears each PTE with ptep_clear_flush, i.e. flush_tlb_page at once:
/// INVLPG locally when the mm is loaded here, and a synchronous IPI to every other CPU in
/// mm_cpumask — one shootdown per unmapped page. TTU_BATCH_FLUSH does not exist yet, so
/// should_defer_flush is always false and nothing else is needed.
/// </summary>
public class Vanilla(PolicyParams p) : FlushPolicy(p)
{
    public override string Name => "vanilla";

    public override string Summary => "Linux 4.0: ptep_clear_flush, one flush (and IPI round) per unmapped page";
}
