namespace Shootdown.Engine;

/// <summary>
/// The simulator's single ordered queue: a binary min-heap keyed by (time, sequence).
/// Ties in time are broken by insertion order, so a run is deterministic (the SimPy/SimSharp rule).
/// Payloads are small integers (a CPU id or an event kind), so nothing is allocated per event.
/// </summary>
public sealed class EventQueue
{
    private long[] _time;
    private long[] _seq;
    private int[] _payload;
    private int _count;
    private long _nextSeq;

    public EventQueue(int capacity = 64)
    {
        capacity = Math.Max(4, capacity);
        _time = new long[capacity];
        _seq = new long[capacity];
        _payload = new int[capacity];
    }

    public int Count => _count;

    public void Push(long time, int payload)
    {
        if (_count == _time.Length)
        {
            Array.Resize(ref _time, _count * 2);
            Array.Resize(ref _seq, _count * 2);
            Array.Resize(ref _payload, _count * 2);
        }
        long seq = _nextSeq++;
        int i = _count++;
        // sift up
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Less(time, seq, _time[parent], _seq[parent]))
            {
                break;
            }
            _time[i] = _time[parent];
            _seq[i] = _seq[parent];
            _payload[i] = _payload[parent];
            i = parent;
        }
        _time[i] = time;
        _seq[i] = seq;
        _payload[i] = payload;
    }

    public bool TryPop(out long time, out int payload)
    {
        if (_count == 0)
        {
            time = 0;
            payload = 0;
            return false;
        }
        time = _time[0];
        payload = _payload[0];
        int n = --_count;
        if (n > 0)
        {
            long t = _time[n];
            long s = _seq[n];
            int p = _payload[n];
            int i = 0;
            while (true)
            {
                int l = 2 * i + 1;
                if (l >= n)
                {
                    break;
                }
                int r = l + 1;
                int c = (r < n && Less(_time[r], _seq[r], _time[l], _seq[l])) ? r : l;
                if (!Less(_time[c], _seq[c], t, s))
                {
                    break;
                }
                _time[i] = _time[c];
                _seq[i] = _seq[c];
                _payload[i] = _payload[c];
                i = c;
            }
            _time[i] = t;
            _seq[i] = s;
            _payload[i] = p;
        }
        return true;
    }


    private static bool Less(long t1, long s1, long t2, long s2) => t1 < t2 || (t1 == t2 && s1 < s2);
}
