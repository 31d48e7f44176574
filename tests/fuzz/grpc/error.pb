"
	test_rowsa table failed