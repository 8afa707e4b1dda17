import pytest
def test_sanity(assert_ob):
    with pytest.raises(AssertionError):
        assert_ob({"Data": {"Account": [{"AccountId": "x", "Bogus": 1}]}}, "aisp", "OBReadAccount6")
    with pytest.raises(AssertionError):
        assert_ob({"Data": {"Transaction": [{"AccountId": "x", "CreditDebitIndicator": "Debit", "Status": "Booked", "BookingDateTime": "2026-01-01T00:00:00+00:00", "Amount": {"Amount": "1.234567", "Currency": "GBP"}}]}}, "aisp", "OBReadTransaction6")
    assert_ob({"Data": {"Account": [{"AccountId": "x"}]}}, "aisp", "OBReadAccount6")
