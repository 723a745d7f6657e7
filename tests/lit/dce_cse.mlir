// RUN: ircomp opt %s -p cse,dce | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %1 = nn.relu %0
// CHECK-NEXT:    %2 = nn.add %1, %1
// CHECK-NEXT:    func.return %2
func.func @main(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %a = nn.relu %x : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %b = nn.relu %x : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %dead = nn.sigmoid %x : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %s = nn.add %a, %b : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  func.return %s : tensor<4x8xf32>
}
