namespace Shootdown.Hardware;

/// <summary>
/// One CPU's data TLB, modelled as the second-level TLB of a 2015 Xeon: set-associative, LRU within a
/// set, entries tagged by (mm, virtual page) with the frame and the writable/dirty bits they were
/// filled with. A full flush bumps a generation number, so it costs O(1) however large the TLB is;
/// the refill cost after it is paid by the misses that follow, not charged up front.
/// </summary>
public sealed class Tlb
{
    public const byte EntryWritable = 1;
    public const byte EntryDirty = 2;

    private readonly long[] _tag;
    private readonly int[] _frame;
    private readonly byte[] _flags;
    private readonly int[] _gen;
    private readonly uint[] _stamp;
    private readonly int[] _epoch;
    private readonly int _ways;
    private readonly int _setMask;
    private int _currentGen = 1;
    private uint _clock;

    public Tlb(int entries, int ways)
    {
        if (entries <= 0 || ways <= 0 || entries % ways != 0)
        {
            throw new ConfigException($"TLB of {entries} entries cannot be {ways}-way set associative");
        }
        int sets = entries / ways;
        if ((sets & (sets - 1)) != 0)
        {
            throw new ConfigException($"TLB set count {sets} must be a power of two");
        }
        _ways = ways;
        _setMask = sets - 1;
        _tag = new long[entries];
        _frame = new int[entries];
        _flags = new byte[entries];
        _gen = new int[entries];
        _stamp = new uint[entries];
        _epoch = new int[entries];
    }

    /// <summary>The mm's PTE-change epoch when the entry was last known to match the page table (oracle fast path).</summary>
    public int EpochAt(int slot) => _epoch[slot];

    public void SetEpochAt(int slot, int epoch) => _epoch[slot] = epoch;

    public int Capacity => _tag.Length;

    public static long Tag(int mm, long vpn) => ((long)mm << 40) | vpn;

    private int SetBase(long vpn) => (int)((vpn ^ (vpn >> 9)) & _setMask) * _ways;

    /// <summary>Finds the entry for (mm, vpn); returns its slot or -1.</summary>
    public int Find(int mm, long vpn)
    {
        long tag = Tag(mm, vpn);
        int b = SetBase(vpn);
        int gen = _currentGen;
        for (int i = b; i < b + _ways; i++)
        {
            if (_tag[i] == tag && _gen[i] == gen)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>A hit refreshes the entry's LRU position; returns the slot or -1 on a miss.</summary>
    public int Lookup(int mm, long vpn)
    {
        int slot = Find(mm, vpn);
        if (slot >= 0)
        {
            _stamp[slot] = ++_clock;
        }
        return slot;
    }

    /// <summary>
    /// One pass over the set: returns the entry's slot on a hit (refreshing its LRU position), or -1
    /// with <paramref name="victim"/> set to the slot a fill would use.
    /// </summary>
    public int LookupOrVictim(int mm, long vpn, out int victim)
    {
        long tag = Tag(mm, vpn);
        int b = SetBase(vpn);
        int gen = _currentGen;
        victim = -1;
        uint oldest = uint.MaxValue;
        for (int i = b; i < b + _ways; i++)
        {
            if (_gen[i] != gen)
            {
                if (victim < 0 || oldest != 0)
                {
                    victim = i;
                    oldest = 0;
                }
                continue;
            }
            if (_tag[i] == tag)
            {
                _stamp[i] = ++_clock;
                return i;
            }
            if (_stamp[i] < oldest)
            {
                oldest = _stamp[i];
                victim = i;
            }
        }
        return -1;
    }

    /// <summary>Installs an entry in <paramref name="slot"/> (from <see cref="LookupOrVictim"/>).</summary>
    public void FillAt(int slot, int mm, long vpn, int frame, byte flags, int epoch = 0)
    {
        _epoch[slot] = epoch;
        _tag[slot] = Tag(mm, vpn);
        _frame[slot] = frame;
        _flags[slot] = flags;
        _gen[slot] = _currentGen;
        _stamp[slot] = ++_clock;
    }

    public int FrameAt(int slot) => _frame[slot];

    public byte FlagsAt(int slot) => _flags[slot];

    public void SetFlagsAt(int slot, byte flags) => _flags[slot] = flags;

    /// <summary>
    /// Installs an entry after a page walk: over an existing entry for (mm, vpn), else in the set's
    /// first invalid or least recently used slot.
    /// </summary>
    public int Fill(int mm, long vpn, int frame, byte flags)
    {
        int slot = LookupOrVictim(mm, vpn, out int victim);
        if (slot < 0)
        {
            slot = victim;
        }
        FillAt(slot, mm, vpn, frame, flags);
        return slot;
    }

    /// <summary>INVLPG: drops the entry for (mm, vpn) if present.</summary>
    public bool FlushOne(int mm, long vpn)
    {
        int slot = Find(mm, vpn);
        if (slot < 0)
        {
            return false;
        }
        _gen[slot] = 0;
        return true;
    }

    /// <summary>CR3 reload: every entry is gone.</summary>
    public void FlushAll()
    {
        _currentGen++;
        if (_currentGen == int.MaxValue)
        {
            Array.Clear(_gen);
            _currentGen = 1;
        }
    }

    /// <summary>Number of valid entries (tests and diagnostics only; O(capacity)).</summary>
    public int CountValid()
    {
        int n = 0;
        foreach (int g in _gen)
        {
            if (g == _currentGen)
            {
                n++;
            }
        }
        return n;
    }
}
