module example.com/bigprog

go 1.19
